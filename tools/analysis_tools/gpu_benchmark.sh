#!/usr/bin/env bash
# Issue 14's GPU benchmark as one short run (about 4 minutes on an H200):
# ViT-B and ViT-L at batch 32 under bf16, r = 0/32/48/64, explicit and fused
# attention, each with its oracle, beside the stock backbone in float32 and
# bf16; Video Swin-B at batch 32 under bf16, r1 = 0/320, the same variants
# and STA's path at r=0. Every model is one call of benchmark.py.
#
#   bash tools/analysis_tools/gpu_benchmark.sh OUT_DIR [--tiny] [--dry-run]
#
# OUT_DIR receives <model>.json, <model>.png and <model>.log per model, and
# gpu.txt (nvidia-smi's name, driver and memory of the GPU).
#
# The paper's throughput measure is batch 32, AMP, 50 warm-up and 30 timed
# forwards. ViT-B runs exactly that; ViT-L and Swin-B run 20 warm-up and 30
# timed forwards, so that the whole script stays under 5 minutes. The runs
# share a cap of BUDGET_S seconds (default 290): a run still going at the
# cap is stopped (timeout), so the script never runs past it.
#
# --tiny: the same calls on the CPU with tiny backbones and their own drop
#         numbers, batch 2, one timed forward (seconds; what the tests run).
# --dry-run: print the calls, run nothing.
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
python=${PYTHON:-python}
budget=${BUDGET_S:-290}
deadline=$((SECONDS + budget))

# bench MODEL DROP_NUMBERS WARMUP REPEATS
bench() {
    local model=$1 rs=$2 warmup=$3 repeats=$4
    local args=("$here/benchmark.py" --model "$model" --amp bf16 --amp-only
        --out-dir "$out")
    if ((tiny)); then
        # the tiny backbones take their own drop numbers; no Swin breakdown,
        # as on the GPU
        args+=(--tiny --device cpu --threads 1 --batch-size 2 --warmup 0
            --repeats 1 --breakdown-repeats 0)
    else
        # shellcheck disable=SC2206  # rs is a list of numbers
        args+=(--device cuda --batch-size 32 --drop-numbers $rs
            --warmup "$warmup" --repeats "$repeats")
    fi
    if ((dry)); then
        echo "$python ${args[*]}"
        return
    fi
    local left=$((deadline - SECONDS))
    if ((left <= 0)); then
        echo "gpu_benchmark.sh: the $budget s budget is spent; $model not run" >&2
        failed+=("$model")
        return
    fi
    # a failed or stopped model is reported at the end; the others still run
    timeout "$left" "$python" "${args[@]}" 2>&1 | tee "$out/$model.log" ||
        failed+=("$model")
}

failed=()

if ((!dry)); then
    mkdir -p "$out"
    if ((!tiny)); then
        nvidia-smi --query-gpu=name,driver_version,memory.total \
            --format=csv >"$out/gpu.txt"
    fi
fi
bench vit-b "0 32 48 64" 50 30
bench vit-l "0 32 48 64" 20 30
bench swin-b "0 320" 20 30
if ((${#failed[@]})); then
    echo "gpu_benchmark.sh: failed or stopped: ${failed[*]}" >&2
    exit 1
fi
