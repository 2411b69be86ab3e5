#!/usr/bin/env bash
# `make gpu-check`: every CUDA test and the GPU speed cases, in one command, into one report file.
# Meant for the few minutes a GPU machine is available: it needs only torch with CUDA and the engine's
# dependencies (no database, no browser). REPORT (default gpu-check.txt) receives everything.
#   make gpu-check            (or: REPORT=/tmp/gpu.txt bash scripts/gpu_check.sh)
set -u
PY=${PYTHON:-python3}
report=${REPORT:-gpu-check.txt}
{
    echo "# gpu-check $(date -u +%FT%TZ)"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
    "$PY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'available', torch.cuda.is_available())"
    echo "## CUDA tests (every test with 'cuda' in its name; they compare CUDA with CPU outputs)"
    timeout "${TESTS_S:-240}" "$PY" -m pytest -q -p no:cacheprovider -k cuda tests/methods tests/synth tests/ops \
        tests/train 2>&1 | tail -25
    echo "## speed (python -m engine.speed --device cuda)"
    timeout "${SPEED_S:-240}" "$PY" -m engine.speed --device cuda --cases "${CASES:-all}" 2>&1 | tail -40
} > "$report" 2>&1
cat "$report"
