#!/usr/bin/env bash
# Trains several learned methods side by side on one GPU, for the shipped weights: each method's
# scripts/gpu_train/METHOD.sh runs in its own copy of the repository (GPU_DIR/src/METHOD) on the data its
# pack_METHOD.py wrote here (GPU_DIR/pack/METHOD), with BUDGET_S seconds of training. Each method's OUTDIR is
# archived as $OUT/METHOD.tgz; nvidia-smi samples go to $OUT/gpu.csv. Used as
#   GPU_DIR=.gpu BUDGET_S=360 OUT=/tmp/out bash scripts/gpu_train/run_all.sh dsnet sfsnet ...
set -u
root=$(pwd)
gpu_dir=$(cd "${GPU_DIR:-.gpu}" && pwd)
out=${OUT:-/tmp/gpu-out}
budget=${BUDGET_S:-360}
mkdir -p "$out" /tmp/gpu-results
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" >> "$out/gpu.txt" 2>&1
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 5 > "$out/gpu.csv" 2>&1 &
smi=$!
pids=()
for method in "$@"; do
    res=/tmp/gpu-results/$method
    mkdir -p "$res"
    (
        cd "$gpu_dir/src/$method" && \
        PACK="$gpu_dir/pack/$method" OUTDIR="$res" BUDGET_S="$budget" OMP_NUM_THREADS=2 PYTHONUNBUFFERED=1 \
            timeout $((budget + ${GRACE_S:-90})) bash "scripts/gpu_train/$method.sh" > "$res/outer.log" 2>&1
        echo "exit status $?" >> "$res/outer.log"
        # The method's own CUDA tests (CUDA against CPU outputs), from its copy of the repository.
        timeout 60 python3 -m pytest -q -p no:cacheprovider -k cuda tests/methods > "$res/cuda_tests.log" 2>&1
        tar czf "$out/$method.tgz" -C /tmp/gpu-results "$method"  # at once: a later overrun cannot lose it
    ) &
    pids+=($!)
done
wait "${pids[@]}"
kill "$smi" 2>/dev/null
for method in "$@"; do
    echo "$method: $(tail -1 /tmp/gpu-results/$method/outer.log) $(du -sh /tmp/gpu-results/$method | cut -f1)"
done
# Then, with the GPU to itself: EXTRA (speed figures, CUDA tests), in the main tree.
if [ -n "${EXTRA:-}" ]; then (cd "$root" && timeout "${EXTRA_S:-100}" bash -c "$EXTRA") > "$out/extra.log" 2>&1; fi
