#!/usr/bin/env bash
# Start Intrinsic Lab: migrate the database, start N job workers in the background, run the dashboard, and keep the
# workers running. Used by `make run` and by the Docker image. Environment:
#   PYTHON (default python3), PORT (8501), WORKERS (1; use one per GPU), INTRINSIC_LAB_DATA (./data),
#   DATABASE_URL (default: SQLite file in the data folder), INTRINSIC_LAB_DEVICE (auto|cpu|cuda|cuda:N),
#   INTRINSIC_LAB_DATASETS (the only folder benchmark datasets may be registered from; default $DATA/datasets).
#
# Supervision: a worker that exits or is killed (say by the kernel's out-of-memory killer) is restarted, after a
# pause that doubles while it keeps dying young (1 s up to 60 s); it never stops the dashboard or the other workers.
# Workers are the kernel's first choice when memory runs out (oom_score_adj 500), so the dashboard survives.
# The script ends when the dashboard ends (or on Ctrl-C / SIGTERM), stopping the workers.
# Threads: INTRINSIC_LAB_WORKERS=$WORKERS lets each worker take its share of the CPUs (engine/threads.py).
set -uo pipefail
PYTHON=${PYTHON:-python3}
PORT=${PORT:-8501}
WORKERS=${WORKERS:-1}
export INTRINSIC_LAB_DATA=${INTRINSIC_LAB_DATA:-$PWD/data}
export INTRINSIC_LAB_DATASETS=${INTRINSIC_LAB_DATASETS:-$INTRINSIC_LAB_DATA/datasets}
export INTRINSIC_LAB_WORKERS=$WORKERS
mkdir -p "$INTRINSIC_LAB_DATA" "$INTRINSIC_LAB_DATASETS"
"$PYTHON" -m db migrate || exit 1

declare -A worker_pid=() worker_started=() worker_delay=()
dashboard_pid=""
stopping=0

log() { echo "serve.sh: $*" >&2; }

cleanup() {
  stopping=1
  local pids=("${worker_pid[@]}")
  [ -n "$dashboard_pid" ] && pids+=("$dashboard_pid")
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap 'cleanup; exit 143' INT TERM
trap cleanup EXIT

start_worker() {
  local i=$1 device=${INTRINSIC_LAB_DEVICE:-auto}
  # With several workers and several GPUs, give worker i the GPU i-1.
  if [ "$WORKERS" -gt 1 ] && [ "$device" = cuda ]; then device="cuda:$((i - 1))"; fi
  "$PYTHON" -m engine worker --device "$device" &
  worker_pid[$i]=$!
  worker_started[$i]=$SECONDS
  echo 500 > "/proc/${worker_pid[$i]}/oom_score_adj" 2>/dev/null || true
}

for i in $(seq 1 "$WORKERS"); do
  worker_delay[$i]=1
  start_worker "$i"
done
echo "Intrinsic Lab: dashboard on http://localhost:$PORT, $WORKERS worker(s), data in $INTRINSIC_LAB_DATA"
"$PYTHON" -m streamlit run dashboard/app.py --server.port "$PORT" --server.address "${ADDRESS:-0.0.0.0}" \
  --server.headless true --browser.gatherUsageStats false &
dashboard_pid=$!

while [ "$stopping" = 0 ]; do
  ended=""
  wait -n -p ended
  status=$?
  [ -z "$ended" ] && continue  # interrupted by a signal; the trap decides
  if [ "$ended" = "$dashboard_pid" ]; then
    log "the dashboard exited (status $status); stopping the workers"
    dashboard_pid=""
    exit "$status"
  fi
  for i in "${!worker_pid[@]}"; do
    [ "${worker_pid[$i]}" = "$ended" ] || continue
    lived=$((SECONDS - worker_started[$i]))
    if [ "$lived" -ge 30 ]; then worker_delay[$i]=1; fi
    log "worker $i (pid $ended) exited with status $status after ${lived} s; restarting it in ${worker_delay[$i]} s"
    sleep "${worker_delay[$i]}"
    worker_delay[$i]=$(( worker_delay[$i] * 2 > 60 ? 60 : worker_delay[$i] * 2 ))
    start_worker "$i"
  done
done
