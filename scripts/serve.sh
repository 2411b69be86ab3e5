#!/usr/bin/env bash
# Start Intrinsic Lab: migrate the database, start N job workers in the background, run the dashboard.
# Used by `make run` and by the Docker image. Environment:
#   PYTHON (default python3), PORT (8501), WORKERS (1; use one per GPU), INTRINSIC_LAB_DATA (./data),
#   DATABASE_URL (default: SQLite file in the data folder), INTRINSIC_LAB_DEVICE (auto|cpu|cuda|cuda:N).
set -euo pipefail
PYTHON=${PYTHON:-python3}
PORT=${PORT:-8501}
WORKERS=${WORKERS:-1}
export INTRINSIC_LAB_DATA=${INTRINSIC_LAB_DATA:-$PWD/data}
mkdir -p "$INTRINSIC_LAB_DATA"
"$PYTHON" -m db migrate

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
for i in $(seq 1 "$WORKERS"); do
  device=${INTRINSIC_LAB_DEVICE:-auto}
  # With several workers and several GPUs, give worker i the GPU i-1.
  if [ "$WORKERS" -gt 1 ] && [ "$device" = cuda ]; then device="cuda:$((i - 1))"; fi
  "$PYTHON" -m engine worker --device "$device" &
  pids+=($!)
done
echo "Intrinsic Lab: dashboard on http://localhost:$PORT, $WORKERS worker(s), data in $INTRINSIC_LAB_DATA"
"$PYTHON" -m streamlit run dashboard/app.py --server.port "$PORT" --server.address "${ADDRESS:-0.0.0.0}" \
  --server.headless true --browser.gatherUsageStats false &
pids+=($!)
wait -n "${pids[@]}"
