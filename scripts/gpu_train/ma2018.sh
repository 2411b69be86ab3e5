#!/usr/bin/env bash
# The ma2018 GPU run (see scripts/gpu_train/ma2018_folds.py): cross-validated MIT folds (unsupervised and
# semi-supervised) + the final model, within BUDGET_S seconds.
#   PACK=/path/to/pack OUTDIR=/path/to/out BUDGET_S=360 bash scripts/gpu_train/ma2018.sh
# Pack made here with: python scripts/gpu_train/pack_ma2018.py PACK.   DEVICE=cpu for a local dry run.
set -u
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
mkdir -p "$OUTDIR"
PY=${PYTHON:-python3}
$PY scripts/gpu_train/ma2018_folds.py --pack "$PACK" --out "$OUTDIR" --budget "${BUDGET_S:-360}" \
    --device "${DEVICE:-cuda}" --lanes "${LANES:-2}" --work "${WORK:-$OUTDIR/../ma2018_work}" \
    > "$OUTDIR/log.txt" 2>&1
status=$?
tail -n 30 "$OUTDIR/log.txt"
exit $status
