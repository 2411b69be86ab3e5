#!/usr/bin/env bash
# Prepares GPU_DIR (default .gpu, git-ignored) for scripts/gpu_train/run_all.sh: for each METHOD=GIT_REV pair,
# a copy of the repository at that revision in GPU_DIR/src/METHOD and the training data that its
# scripts/gpu_train/pack_METHOD.py writes from ../shared into GPU_DIR/pack/METHOD. Prints the sizes (the device
# tool carries 64 MiB in all).
#   scripts/gpu_train/stage.sh dsnet=dsnet sfsnet=HEAD ...
set -euo pipefail
gpu_dir=${GPU_DIR:-.gpu}
python=${PYTHON:-.venv/bin/python}
root=$(pwd)
mkdir -p "$gpu_dir/src" "$gpu_dir/pack"
for pair in "$@"; do
    method=${pair%%=*}
    rev=${pair#*=}
    rm -rf "$gpu_dir/src/$method" "$gpu_dir/pack/$method"
    mkdir -p "$gpu_dir/src/$method"
    git archive "$rev" | tar -x -C "$gpu_dir/src/$method"
    rm -rf "$gpu_dir/src/$method/assets/weights"  # the runs write their own; shipped files need not travel
    (cd "$gpu_dir/src/$method" && "$root/$python" "scripts/gpu_train/pack_$method.py" "$root/$gpu_dir/pack/$method")
    echo "$method: code $(du -sh "$gpu_dir/src/$method" | cut -f1), pack $(du -sh "$gpu_dir/pack/$method" | cut -f1)"
done
du -sh "$gpu_dir"
