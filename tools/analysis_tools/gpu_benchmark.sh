#!/usr/bin/env bash
# The GPU speed run as one command for a short device window: ViT-B and
# ViT-L at batch 32 under bf16, r = 0/32/48/64, explicit and fused attention,
# each with its oracle, beside the stock backbone in fp32 (TF32 on) and
# bf16; ViT-B again at r = 0/64 with compiled fused rows (CUDA graphs) at 64;
# Video Swin-B at batch 32 under bf16, r1 = 0/320. One benchmark.py call per
# model, each under its own time cap, each writing its JSON when it ends.
#
#   bash tools/analysis_tools/gpu_benchmark.sh OUT_DIR [--tiny] [--dry-run]
#
# Packages: the wheels in WHEELS (default .whl beside the checkout, made by
# `make gpu-wheels`) are installed with `pip install --no-index --no-deps
# --target SITE` (default /tmp/sta_site), and SITE and the checkout lead
# PYTHONPATH; without WHEELS the installed packages are used. PYTHON
# defaults to python3.
#
# OUT_DIR receives env.txt (GPU, driver, torch, CUDA, TF32, SDPA backends),
# then <name>.log and <name>/<model>.json per call. A --tiny CUDA smoke call runs
# first; if it fails, nothing else runs (exit 1). A call that fails or hits
# its cap is named at the end (exit 1); the others still run.
#
# --tiny: the same calls on the CPU with tiny backbones (what is checked
#         before device time is spent). --dry-run: print the commands only.
set -euo pipefail

usage() {
    echo "usage: $0 OUT_DIR [--tiny] [--dry-run]" >&2
    exit 2
}

[[ $# -ge 1 && $1 != -* ]] || usage
out=$1
shift
tiny=0
dry=0
for arg in "$@"; do
    case $arg in
    --tiny) tiny=1 ;;
    --dry-run) dry=1 ;;
    *) usage ;;
    esac
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${PYTHON:-python3}
wheels=${WHEELS:-$root/.whl}
site=${SITE:-/tmp/sta_site}
failed=()

run() { # echo a command on a dry run, else run it
    if ((dry)); then
        echo "$*"
    else
        "$@"
    fi
}

# bench NAME CAP_S MODEL COMPILE GPU_ARGS...: one benchmark.py call under
# its own cap, writing OUT_DIR/NAME.log and OUT_DIR/NAME/MODEL.json;
# COMPILE: the r with compiled rows ('' none; --tiny compiles r=4 alone)
bench() {
    local name=$1 cap=$2 model=$3 compile=$4
    shift 4
    local args=("$here/benchmark.py" --model "$model" --out-dir "$out/$name"
        --amp bf16 --amp-only)
    if ((tiny)); then
        cap=$((cap * 3)) # inductor's C++ builds on a shared CPU
        args+=(--tiny --device cpu --threads 1 --batch-size 2 --repeats 1
            --breakdown-repeats 0)
        [[ -z $compile ]] || args+=(--compile 4)
    else
        # shellcheck disable=SC2206  # compile is a list of numbers
        args+=(--device cuda --batch-size 32 "$@")
        [[ -z $compile ]] || args+=(--compile $compile)
    fi
    if ((dry)); then
        echo "timeout $cap $python ${args[*]}"
        return 0
    fi
    timeout "$cap" "$python" "${args[@]}" >"$out/$name.log" 2>&1 || {
        echo "gpu_benchmark.sh: $name failed or hit its ${cap} s cap;" \
            "see $out/$name.log" >&2
        failed+=("$name")
        return 1
    }
    grep -v '^USDT\|^STAGE' "$out/$name.log" | tail -n 40
}

if compgen -G "$wheels/*.whl" >/dev/null; then
    run "$python" -m pip install -q --no-index --no-deps --no-compile \
        --no-cache-dir --upgrade --target "$site" "$wheels"/*.whl
    export PYTHONPATH="$site:$root${PYTHONPATH:+:$PYTHONPATH}"
else
    echo "gpu_benchmark.sh: no wheels in $wheels; using the installed" \
        "packages (make gpu-wheels makes them)" >&2
    export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
fi
((dry)) && echo "PYTHONPATH=$PYTHONPATH"

if ((!dry)); then
    mkdir -p "$out"
    {
        nvidia-smi --query-gpu=name,driver_version,memory.total \
            --format=csv 2>/dev/null || echo "nvidia-smi: none"
        "$python" - <<'EOF'
import torch
from sta_mmaction.analysis.speed import environment
dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
print(environment(dev))
for name in ('onnxruntime', 'tensorrt'):
    try:
        mod = __import__(name)
    except ImportError:
        print(f'{name}: not installed')
        continue
    extra = (mod.get_available_providers()
             if name == 'onnxruntime' else '')
    print(f'{name}: {mod.__version__} {extra}')
EOF
    } >"$out/env.txt" 2>&1 || {
        cat "$out/env.txt" >&2
        echo "gpu_benchmark.sh: the packages do not import; stopping" >&2
        exit 1
    }
    cat "$out/env.txt"
fi

device=cuda
((tiny)) && device=cpu
# fail fast: a seconds-long call of every step on the device
((tiny)) || bench smoke 60 vit-s '' --tiny --repeats 1 || exit 1
bench vit-b 110 vit-b '' --drop-numbers 0 32 48 64 --repeats 5 \
    --number 10 || true
bench vit-l 120 vit-l '' --drop-numbers 0 32 48 64 --repeats 5 \
    --number 5 || true
bench swin-b 80 swin-b '' --drop-numbers 0 320 --repeats 3 --number 5 || true
bench vit-b-compiled 130 vit-b 64 --drop-numbers 0 64 --repeats 5 \
    --number 10 || true
# onnxruntime's CUDA provider, fp32, where the image's onnxruntime has it
if ((!tiny && !dry)) && grep -q CUDAExecutionProvider "$out/env.txt"; then
    timeout 60 "$python" "$here/benchmark.py" --model vit-b --device cuda \
        --batch-size 32 --drop-numbers 0 64 --repeats 3 --number 5 \
        --runtime onnxruntime --provider CUDAExecutionProvider \
        --out-dir "$out/ort-cuda" >"$out/ort-cuda.log" 2>&1 || {
        echo "gpu_benchmark.sh: ort-cuda failed; see $out/ort-cuda.log" >&2
        failed+=(ort-cuda)
    }
fi

if ((${#failed[@]})); then
    echo "gpu_benchmark.sh: failed or stopped on $device: ${failed[*]}" >&2
    exit 1
fi
