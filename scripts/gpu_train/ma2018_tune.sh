#!/usr/bin/env bash
# Loss-weight tuning for ma2018 on one GPU machine (the runs behind the tuning table of the model card):
# each variant is a set of unsupervised (or semi-supervised) cross-validated MIT folds, 75 s of training per run,
# all variants in parallel.   PACK=/path/to/pack OUT=/path/to/out bash scripts/gpu_train/ma2018_tune.sh
# A variant: NAME LANES unsup|semi NAME=VALUE...; the list below is the last round (M..P).
set -u
cd "$(dirname "$0")/../.."
run_variant() {
  name=$1; lanes=$2; only=$3; shift 3
  sets=(); for s in "$@"; do sets+=(--set "$s"); done
  mkdir -p "$OUT/$name"
  python3 scripts/gpu_train/ma2018_folds.py --pack "$PACK" --out "$OUT/$name" --work "/tmp/w_$name" --budget 200 \
     --per-run 75 --lanes "$lanes" --only "$only" --synthetic 0 "${sets[@]}" > "$OUT/$name/log.txt" 2>&1
  rm -rf "$OUT/$name/folds" "$OUT/$name"/*.safetensors "$OUT/$name/runs"
}
run_variant M 5 unsup batch_size=32 dark=0.02 embed_margin=0.1 w_smooth=20 &
run_variant N 5 unsup batch_size=32 dark=0.02 embed_margin=0.1 w_smooth=10 &
run_variant O 5 unsup batch_size=32 dark=0.02 embed_margin=0.05 w_smooth=20 w_grad=3 &
run_variant P 5 semi batch_size=32 dark=0.02 embed_margin=0.1 w_smooth=20 &
wait
for v in M N O P; do
  echo "== $v"
  python3 -c "import json; r=json.load(open('$OUT/$v/folds.json')); print({k: round(v['grosse_lmse'], 4) for k, v in r['summary'].items()})"
done
