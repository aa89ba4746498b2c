# Two commands do all the set-up on a fresh machine:
#   make demo   - the main job on an embedded default (generated clips)
#   make test   - the test suite
# Both create (or reuse) a virtual environment in .venv with the pinned stack.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test flops venv clean gpu-wheels

$(STAMP): requirements.txt requirements/runtime.txt requirements/tests.txt \
          requirements/deploy.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements/tests.txt \
	  -r requirements/deploy.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) tools/demo.py $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -n 2 tests projects/synthetic_accuracy/tests $(ARGS)

flops: $(STAMP)
	for m in s b l h; do \
	  $(PY) tools/analysis_tools/get_flops.py configs/sta_vit$${m}_k400_r64.py \
	    --drop-numbers 0 32 48 64 || exit 1; \
	done
	for c in swint_k400 swins_k400 swinb_k400 swinb22k_k400 swinb_ssv2; do \
	  $(PY) tools/analysis_tools/get_flops.py configs/sta_$${c}_r0.py \
	    --drop-numbers 0 192 256 320 || exit 1; \
	done

# wheels the GPU image lacks, for tools/analysis_tools/gpu_benchmark.sh
gpu-wheels: $(STAMP)
	PIP="$(PY) -m pip" bash tools/analysis_tools/gpu_wheels.sh .whl

clean:
	rm -rf work_dirs .pytest_cache
