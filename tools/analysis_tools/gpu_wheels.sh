#!/usr/bin/env bash
# Download into DIR (default .whl, git-ignored) the wheels that the GPU
# image lacks (CPython 3.12, manylinux x86_64; it has torch, numpy, scipy,
# matplotlib, opencv-python-headless, einops, pyyaml, rich, regex, tqdm,
# tabulate, pillow, packaging, portalocker, typing-extensions, zipp), one
# version each, every dependency named: gpu_benchmark.sh installs them with
# `pip install --no-index --no-deps --target`.
#
#   bash tools/analysis_tools/gpu_wheels.sh [DIR]      (make gpu-wheels)
#
# PIP (default: python3 -m pip) runs the downloads; fvcore and iopath ship
# only sources, so they are built here into pure-Python wheels.
set -euo pipefail

dir=${1:-.whl}
pip=${PIP:-python3 -m pip}

# name==version: the stack's pins (requirements/runtime.txt) and the
# dependencies the image lacks
WHEELS=(
    mmengine==0.10.7         # -> addict, termcolor, yapf (+ image packages)
    mmcv-lite==2.1.0         # -> addict, mmengine, yapf
    mmaction2==1.2.0         # -> decord, einops (image)
    decord==0.6.0
    addict==2.4.0
    termcolor==3.3.0
    yapf==0.43.0             # -> platformdirs
    platformdirs==4.14.9
    importlib-metadata==10.2.0  # imported by mmaction2, undeclared
    lazy-importer==0.1.0     # importlib-metadata's (-> zipp: image)
    setuptools==80.10.2      # pkg_resources for mmengine (gone in 81)
    yacs==0.1.8              # fvcore's
)
SOURCES=(
    fvcore==0.1.5.post20221221  # -> yacs, iopath, tabulate, termcolor
    iopath==0.1.10              # -> portalocker, tqdm (image)
)

mkdir -p "$dir"
rm -f "$dir"/*.whl
# shellcheck disable=SC2086  # $pip is a command line
$pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux2010_x86_64 --platform manylinux1_x86_64 \
    -d "$dir" "${WHEELS[@]}"
# shellcheck disable=SC2086
$pip wheel --quiet --no-deps --no-binary=:all: -w "$dir" "${SOURCES[@]}"
count=$(find "$dir" -maxdepth 1 -type f -name '*.whl' | wc -l)
if ((count != ${#WHEELS[@]} + ${#SOURCES[@]})); then
    echo "gpu_wheels.sh: $count wheels in $dir, expected" \
        "$((${#WHEELS[@]} + ${#SOURCES[@]}))" >&2
    exit 1
fi
ls "$dir"
