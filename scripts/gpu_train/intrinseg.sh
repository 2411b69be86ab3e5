#!/usr/bin/env bash
# GPU run for IntrinSeg and CGIntrinsics: render photographic scenes, pre-train both networks on them, fine-tune
# with the MIT objects in 5 cross-validation folds and once on all ten, predict the held-out objects, and export.
#   PACK=/path/to/pack OUTDIR=/path/to/out BUDGET_S=360 bash scripts/gpu_train/intrinseg.sh
# PACK is written by scripts/gpu_train/pack_intrinseg.py (mit/, photos/). DEVICE=cpu for a CPU dry run.
# OUTDIR receives: intrinseg.safetensors (float16 if that leaves the scores unchanged) and .md, cgintrinsics.safetensors (fp16 only: the float32 file
# is over the size limit) and .md, metrics.csv (the IntrinSeg final run), fold_scores.json, precision.json,
# folds/<net>/<object>_{albedo,shading}.png (held-out predictions), runs/*.json + *.csv (every run's record),
# log.txt.
set -u
PACK=${PACK:?PACK}
OUTDIR=${OUTDIR:?OUTDIR}
B=${BUDGET_S:-360}
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
FOLDS=${FOLDS:-0 1 2 3 4}   # which cross-validation folds to train (a CPU dry run may use one)
SLACK=${SLACK:-90}          # seconds a stage may run past its budget (start-up, validation, export)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} PYTHONUNBUFFERED=1 TQDM_MININTERVAL=15
mkdir -p "$OUTDIR"
W=$(mktemp -d /tmp/intrinseg-work.XXXXXX)
exec > >(tee -a "$OUTDIR/log.txt") 2>&1
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
R=$(( B * 12 / 100 )); P=$(( B * 26 / 100 )); F=$(( B * 34 / 100 ))
stamp "budget $B s: render $R, pre-train $P, fine-tune $F; device $DEVICE; work $W"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

# 1. Photographic scenes (photo textures, clutter, indoor/outdoor light), two renderers with disjoint seeds.
SIZE=${RENDER_SIZE:-256}
pids=()
for part in 0 1; do
  OMP_NUM_THREADS=1 timeout $(( R + SLACK )) $PY -m engine.synth --n 5000 --size "$SIZE" --lightings 2 \
    --style photographic --textures "$PACK/photos" --device "$DEVICE" --seed $(( part * 500000 )) \
    --max-seconds "$R" --out "$W/synth$part" > "$W/render$part.log" 2>&1 &
  pids+=($!)
done
wait "${pids[@]}"  # (a bare wait would also wait for the tee of the log)
mkdir -p "$W/synth/samples"
cp "$W/synth0/manifest.json" "$W/synth/manifest.json"
for part in 0 1; do
  for f in "$W/synth$part"/samples/*.npz; do [ -e "$f" ] && mv "$f" "$W/synth/samples/p${part}_$(basename "$f")"; done
done
NS=$(ls "$W/synth/samples" | wc -l)
stamp "rendered $NS scenes ($SIZE px, 2 lightings each)"; tail -n 2 "$W"/render*.log
[ "$NS" -gt 0 ] || { echo "no scenes rendered"; exit 1; }

common=(--data "$W/synth" --device "$DEVICE" --steps 100000)
# 2. Pre-training on rendered scenes only (no MIT): IntrinSeg from scratch, CGIntrinsics from its shipped
#    synthetic weights (the paper pre-trains on rendered data, then fine-tunes on MIT).
OMP_NUM_THREADS=1 timeout $(( P + SLACK )) $PY -m engine train intrinseg "${common[@]}" --max-seconds "$P" --name pre \
  --set batch_size=16 --set lr=1e-3 --set val_every=0 --set checkpoint_every=100000 --set time_budget="$P" \
  --out "$W/runs/intrinseg_pre" > "$W/intrinseg_pre.log" 2>&1 &
pids=($!)
OMP_NUM_THREADS=1 timeout $(( P + SLACK )) $PY -m engine train cgintrinsics "${common[@]}" --max-seconds "$P" --name pre \
  --set batch_size=16 --set crop=256 --set render_size="$SIZE" --set w_lmse=1 --set exposure_max=1.0 --set val_every=0 \
  --set checkpoint_every=100000 --set time_budget="$P" --set init=assets/weights/cgintrinsics-synthetic.safetensors \
  --out "$W/runs/cgintrinsics_pre" > "$W/cgintrinsics_pre.log" 2>&1 &
pids+=($!)
wait "${pids[@]}"
for n in intrinseg cgintrinsics; do tail -n 1 "$W/${n}_pre.log"; done
stamp "pre-trained"

# 3. Fine-tuning with MIT (albedo/shading; IntrinSeg's segmentation loss masked there): folds 0-4 and all ten.
pids=()
for n in intrinseg cgintrinsics; do
  init=$(ls "$W/runs/${n}_pre/export/"*.safetensors 2>/dev/null | head -n 1)
  [ -n "$init" ] || init=""
  if [ "$n" = intrinseg ]; then extra=(--set lr=5e-4 --set warmup=20 --set mit_share=0.5);
  else extra=(--set lr=2e-4 --set crop=256 --set render_size="$SIZE" --set w_lmse=1 --set mit_share=0.5 --set noise=0 --set exposure_max=1.0); fi
  for k in $FOLDS all; do
    if [ "$k" = all ]; then fold=-1; name=mit; out="$W/runs/${n}_final"; else fold=$k; name="f$k"; out="$W/runs/${n}_f$k"; fi
    OMP_NUM_THREADS=1 timeout $(( F + SLACK )) $PY -m engine train "$n" "${common[@]}" --max-seconds "$F" --name "$name" \
      --set batch_size=8 --set mit_dir="$PACK/mit" --set fold="$fold" --set val_every=0 \
      --set checkpoint_every=100000 --set time_budget="$F" --set init="$init" "${extra[@]}" \
      --out "$out" > "$W/${n}_$name.log" 2>&1 &
    pids+=($!)
  done
done
wait "${pids[@]}"
for f in "$W"/*_f?.log "$W"/*_mit.log; do echo "$(basename "$f"): $(tail -c 300 "$f" | tail -n 1)"; done
stamp "fine-tuned"

# 4. Held-out predictions and fold scores (benchmark Grosse LMSE on the pack's 16-bit data).
timeout 120 $PY scripts/intrinsic_cv.py predict --runs "$W/runs" --mit "$PACK/mit" --out "$OUTDIR" --device "$DEVICE"
stamp "predicted"

# 5. Exports: final weights (+ float16 copies, with the score change measured), cards, curves, run records.
cp "$W/runs/intrinseg_final/export/intrinseg-mit.safetensors" "$OUTDIR/intrinseg.safetensors"
cp "$W/runs/intrinseg_final/export/intrinseg-mit.md" "$OUTDIR/intrinseg.md"
cp "$W/runs/intrinseg_final/metrics.csv" "$OUTDIR/metrics.csv"
cp "$W/runs/cgintrinsics_final/export/cgintrinsics-mit.md" "$OUTDIR/cgintrinsics.md"
timeout 180 $PY scripts/intrinsic_cv.py halve intrinseg="$OUTDIR/intrinseg.safetensors" \
  cgintrinsics="$W/runs/cgintrinsics_final/export/cgintrinsics-mit.safetensors" --mit "$PACK/mit" \
  --out-dir "$OUTDIR" --device "$DEVICE" --json "$OUTDIR/precision.json"
mv "$OUTDIR/cgintrinsics-mit-fp16.safetensors" "$OUTDIR/cgintrinsics-fp16.safetensors" 2>/dev/null
# Ship IntrinSeg in float16 when that changes no object's score by more than 1e-4 (precision.json has the numbers).
if $PY -c "import json,sys; r=json.load(open('$OUTDIR/precision.json')); sys.exit(0 if r['intrinseg']['max_abs_difference'] < 1e-4 else 1)" 2>/dev/null; then
  mv "$OUTDIR/intrinseg-fp16.safetensors" "$OUTDIR/intrinseg.safetensors"; stamp "intrinseg.safetensors is float16"
else
  # The float32 file of the default half-width network is 20 MB, over the device tool's 16 MiB per returned file,
  # so the float16 copy stays beside it (precision.json says how much it moved the scores).
  stamp "float16 changed IntrinSeg's scores: intrinseg.safetensors stays float32 (20 MB at width 0.5: it may not come back; intrinseg-fp16.safetensors is kept)"
fi
mkdir -p "$OUTDIR/runs"
for d in "$W"/runs/*; do
  b=$(basename "$d")
  cp "$d/run.json" "$OUTDIR/runs/$b.run.json" 2>/dev/null
  cp "$d/validation.csv" "$OUTDIR/runs/$b.validation.csv" 2>/dev/null
  cp "$d/metrics.csv" "$OUTDIR/runs/$b.metrics.csv" 2>/dev/null
  cp "$d"/export/*.md "$OUTDIR/runs/$b.card.md" 2>/dev/null
done
for f in "$W"/*.log; do tail -c 4000 "$f" > "$OUTDIR/runs/$(basename "$f")"; done
size=$(du -sk "$OUTDIR" | cut -f1)
if [ "$size" -gt 15100 ]; then stamp "OUTDIR ${size} KiB: dropping the prediction images"; rm -rf "$OUTDIR/folds"; fi
stamp "done: $(du -sh "$OUTDIR" | cut -f1)"
rm -rf "$W"
