#!/usr/bin/env bash
# Attentive GAN on the GPU: drops rendered on the fly over the packed backgrounds (pack_attentive_gan.py).
#   PACK=/path/to/pack OUTDIR=/path/to/out BUDGET_S=360 bash scripts/gpu_train/attentive_gan.sh
# ATTENTIVE_GAN_EXTRA="--set batch_size=2 --set val_count=2" shrinks a CPU smoke test (a method-specific name, so
# that a caller's own EXTRA cannot leak into the command). Leaves in OUTDIR: attentive_gan.safetensors,
# attentive_gan.md (card), metrics.csv, validation.csv, log.txt.
set -uo pipefail
: "${PACK:?set PACK}" "${OUTDIR:?set OUTDIR}"
BUDGET_S="${BUDGET_S:-360}"
DEVICE="${DEVICE:-cuda}"
PYTHON="${PYTHON:-python3}"
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 TQDM_DISABLE=1 TQDM_MININTERVAL=30
mkdir -p "$OUTDIR"
LOG="$OUTDIR/log.txt"
# Training stops at this many seconds; start-up, the final validation and the export fit in the rest.
TRAIN_S=$(( BUDGET_S > 120 ? BUDGET_S - 60 : BUDGET_S / 2 ))
{
  echo "attentive_gan GPU run: budget ${BUDGET_S}s, training ${TRAIN_S}s, device ${DEVICE}, $(date -u)"
  timeout $(( BUDGET_S + 45 )) "$PYTHON" -m engine train attentive_gan --data "$PACK" --steps 20000 \
    --max-seconds "$TRAIN_S" --device "$DEVICE" --seed 0 --name project --out "$OUTDIR/run" --fresh \
    --set batch_size=16 --set crop=128 --set workers=2 --set val_every=400 --set checkpoint_every=1000 \
    --set val_count=16 --set lr=5e-4 --threads 2 ${ATTENTIVE_GAN_EXTRA:-}
  status=$?
  echo "train exit status $status"
  cp "$OUTDIR/run/export/attentive_gan-project.safetensors" "$OUTDIR/attentive_gan.safetensors"
  cp "$OUTDIR/run/export/attentive_gan-project.md" "$OUTDIR/attentive_gan.md"
  cp "$OUTDIR/run/metrics.csv" "$OUTDIR/run/validation.csv" "$OUTDIR/run/run.json" "$OUTDIR/" 2>/dev/null
  rm -rf "$OUTDIR/run/checkpoints"
  echo "done $(date -u)"
} >"$LOG" 2>&1
ls -la "$OUTDIR" >>"$LOG"
