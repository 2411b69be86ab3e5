#!/usr/bin/env bash
# DS-Net on the GPU: the 5 cross-validation folds and the final model (all 10 INTEL-TAU images), then the
# cross-validation report beside every baseline.
#
#   PACK=/path/to/pack OUTDIR=/path/to/out BUDGET_S=360 bash scripts/gpu_train/dsnet.sh
#
# PACK is written by `python scripts/gpu_train/pack_dsnet.py PACK` (INTEL-TAU + photographs, < 5 MiB).
# Six trainings in two waves of three parallel processes, each stopped by --max-seconds (its cosine learning-rate
# schedule follows the same wall time), then scripts/dsnet_cv.py scores the folds (stride 4 and 8). OUTDIR gets:
# dsnet.safetensors + dsnet.md (final model, weight set intel-tau), metrics.csv (final run), cv_stride4.json, cv_stride8.json,
# folds/ (each fold's validation.csv, run.json), log.txt. DEVICE=cpu lets it be tested here.
set -euo pipefail
: "${PACK:?set PACK}" "${OUTDIR:?set OUTDIR}"
BUDGET_S="${BUDGET_S:-360}"
DEVICE="${DEVICE:-cuda}"
PY="${PYTHON:-python3}"
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 TQDM_MININTERVAL=15 PYTHONUNBUFFERED=1
mkdir -p "$OUTDIR"
exec > >(tee -a "$OUTDIR/log.txt") 2>&1
START=$(date +%s)
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# Time plan: ~80 s of unpacking and evaluation, two waves of trainings with ~30 s of start-up each.
PER_RUN=$(( (BUDGET_S - 80) / 2 - 30 ))
if (( PER_RUN < 5 )); then PER_RUN=5; fi
BATCH="${BATCH:-256}"
SYNTH="${SYNTH:-8}"
echo "dsnet GPU run: budget ${BUDGET_S}s, ${PER_RUN}s per training, device ${DEVICE}, batch ${BATCH}"

"$PY" scripts/gpu_train/pack_dsnet.py --unpack "$PACK" "$WORK/cc"
COMMON=(--data "$WORK/cc" --steps 1000000 --device "$DEVICE" --max-seconds "$PER_RUN" --log-every 100
        --set "batch_size=$BATCH" --set "schedule_seconds=$PER_RUN" --set val_every=0 --set checkpoint_every=1000000
        --set "photos_dir=$PACK/photos" --set "synth_scenes=$SYNTH")

train() {  # NAME FOLD
  "$PY" -m engine train dsnet "${COMMON[@]}" --name "$1" --set "fold=$2" --out "$WORK/runs/$1" \
    > "$WORK/$1.log" 2>&1 || echo "training $1 failed (see below)"
  tail -n 25 "$WORK/$1.log" | tr '\r' '\n' | grep -v "it/s\]$" | tail -n 14 | sed "s/^/[$1] /"
}

# wait on the trainings' own pids: a bare `wait` would also wait for the tee above, forever
train fold0 0 & P1=$!; train fold1 1 & P2=$!; train fold2 2 & P3=$!; wait $P1 $P2 $P3
echo "wave 1 done at $(( $(date +%s) - START ))s"
train fold3 3 & P1=$!; train fold4 4 & P2=$!; train intel-tau -1 & P3=$!; wait $P1 $P2 $P3
echo "wave 2 done at $(( $(date +%s) - START ))s"

mkdir -p "$OUTDIR/folds"
for f in fold0 fold1 fold2 fold3 fold4 intel-tau; do
  mkdir -p "$OUTDIR/folds/$f"
  cp "$WORK/runs/$f/validation.csv" "$WORK/runs/$f/run.json" "$OUTDIR/folds/$f/" 2>/dev/null || true
  cp "$WORK/runs/$f/export/dsnet-$f.md" "$OUTDIR/folds/$f/" 2>/dev/null || true
done
if [[ -f "$WORK/runs/intel-tau/export/dsnet-intel-tau.safetensors" ]]; then
  cp "$WORK/runs/intel-tau/export/dsnet-intel-tau.safetensors" "$OUTDIR/dsnet.safetensors"
  cp "$WORK/runs/intel-tau/export/dsnet-intel-tau.md" "$OUTDIR/dsnet.md"
  cp "$WORK/runs/intel-tau/metrics.csv" "$OUTDIR/metrics.csv"
fi
FINAL_ARG=()
[[ -f "$OUTDIR/dsnet.safetensors" ]] && FINAL_ARG=(--final "$OUTDIR/dsnet.safetensors")
for stride in ${STRIDES:-8 4}; do
  "$PY" scripts/dsnet_cv.py --data "$WORK/cc" --runs "$WORK/runs" --device "$DEVICE" --stride "$stride" \
    "${FINAL_ARG[@]}" --out "$OUTDIR/cv_stride$stride.json" || echo "evaluation at stride $stride failed"
  if (( $(date +%s) - START > BUDGET_S + 20 )); then echo "skipping further evaluation (time)"; break; fi
done
echo "dsnet GPU run finished in $(( $(date +%s) - START ))s"
