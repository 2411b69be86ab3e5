#!/usr/bin/env bash
# SfSNet GPU training run (see scripts/gpu_train/pack_sfsnet.py for the pack):
#   PACK=/path/to/pack OUTDIR=/path/to/out BUDGET_S=360 bash scripts/gpu_train/sfsnet.sh
# Renders Surrey Face Model faces on the GPU on the fly and trains SfSNet (width 0.5) for BUDGET_S − 45 s of
# training time, then validates on 64 held-out faces and exports. Leaves in OUTDIR: sfsnet.safetensors, sfsnet.md,
# metrics.csv, validation.csv, log.txt. Set DEVICE=cpu for a local smoke test.
set -u
: "${PACK:?set PACK}" "${OUTDIR:?set OUTDIR}"
BUDGET_S="${BUDGET_S:-360}"
DEVICE="${DEVICE:-cuda}"
PY="${PYTHON:-python3}"
export OMP_NUM_THREADS=2
export INTRINSIC_LAB_SFM="$PACK/sfm"
mkdir -p "$OUTDIR"
TRAIN_S=$(( BUDGET_S > 90 ? BUDGET_S - 45 : BUDGET_S / 2 ))
BATCH="${BATCH:-32}"
RUN="$OUTDIR/run"
{
  echo "sfsnet GPU run: budget ${BUDGET_S}s, training ${TRAIN_S}s, device ${DEVICE}, batch ${BATCH}"
  "$PY" -m engine train sfsnet --data synthetic --steps 200000 --device "$DEVICE" --seed 0 --name synthetic \
    --max-seconds "$TRAIN_S" --set batch_size="$BATCH" --set time_budget="$TRAIN_S" --set val_every=1000000 \
    --set checkpoint_every=1000000 --log-every 25 --out "$RUN" --fresh 2>&1 | tr '\r' '\n' | grep -v "it/s\]$" | tail -n 60
  echo "exit status ${PIPESTATUS[0]}"
} > "$OUTDIR/log.txt" 2>&1
cp "$RUN/export/sfsnet-synthetic.safetensors" "$OUTDIR/sfsnet.safetensors" 2>>"$OUTDIR/log.txt"
cp "$RUN/export/sfsnet-synthetic.md" "$OUTDIR/sfsnet.md" 2>>"$OUTDIR/log.txt"
cp "$RUN/metrics.csv" "$RUN/validation.csv" "$OUTDIR/" 2>>"$OUTDIR/log.txt"
rm -rf "$RUN"
ls -la "$OUTDIR" >> "$OUTDIR/log.txt"
