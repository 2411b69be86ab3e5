#!/usr/bin/env bash
# A throw-away PostgreSQL server for the tests, from Debian's postgresql package.
#
#   url=$(scripts/pg-test-server.sh start)   # prints postgresql+psycopg://postgres@127.0.0.1:PORT/postgres
#   scripts/pg-test-server.sh stop "$url"    # stops it and deletes its files
#
# The cluster lives in a fresh temporary folder, listens on 127.0.0.1 only (and a socket in that folder), on a
# free port, trusts local connections, and trades durability for speed (fsync off): it holds test data only.
# PostgreSQL refuses to run as root, so as root the server runs as the `postgres` system user.
# Exit status 3: PostgreSQL is not installed (callers may then skip the PostgreSQL tests).
set -euo pipefail

STATE_PREFIX="${TMPDIR:-/tmp}/intrinsic-lab-pg"

die() { echo "pg-test-server: $*" >&2; exit "${2:-1}"; }

pg_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$dir" ] && [ -x "$dir/initdb" ] || die "PostgreSQL is not installed (Debian: apt-get install postgresql)" 3
    echo "$dir"
}

as_server_user() {
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user to run the server" 3
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    local bin port dir tries=0
    bin=$(pg_bin)
    # The folder name carries the port, so `stop URL` finds it; mkdir fails if another server took the port.
    while :; do
        port=$(free_port)
        dir="$STATE_PREFIX-$port"
        mkdir -m 700 "$dir" 2>/dev/null && break
        tries=$((tries + 1)); [ "$tries" -lt 20 ] || die "cannot create a server folder like $dir"
    done
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    if ! as_server_user "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
            >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2; rm -rf "$dir"; die "initdb failed"
    fi
    if ! as_server_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off \
                -c full_page_writes=off -c max_connections=100" start >/dev/null; then
        cat "$dir/server.log" >&2 2>/dev/null || true; rm -rf "$dir"; die "the server did not start"
    fi
    echo "postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
}

stop() {
    local url="${1:-}" port dir bin
    [ -n "$url" ] || die "usage: $0 stop URL (the URL that start printed)"
    port=$(sed -E 's#.*@127\.0\.0\.1:([0-9]+)/.*#\1#' <<<"$url")
    [[ "$port" =~ ^[0-9]+$ ]] || die "cannot read a port from $url"
    dir="$STATE_PREFIX-$port"
    [ -d "$dir" ] || die "no test server for port $port ($dir is missing)"
    bin=$(pg_bin)
    as_server_user "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}

case "${1:-}" in
    start) start ;;
    stop) shift; stop "$@" ;;
    *) die "usage: $0 start | stop URL" 2 ;;
esac
