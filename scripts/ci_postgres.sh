#!/usr/bin/env bash
# Start (or reuse) a throwaway PostgreSQL cluster for the tests and print how to reach it.
#
#   eval "$(scripts/ci_postgres.sh)"        # exports RAG_TEST_POSTGRES_URL
#   scripts/ci_postgres.sh pg.env && . pg.env
#
# For CI on Debian bookworm as root: installs Debian's `postgresql` package when its binaries
# are missing, runs the cluster as the `postgres` user (PostgreSQL refuses root), listening on
# 127.0.0.1 only, with a random password kept in the cluster folder. Idempotent: a second call
# reuses the running cluster (or restarts a stopped one) and prints the same URL.
#
# Settings: RAG_CI_PG_DIR (default /tmp/rag-ci-postgres), RAG_CI_PG_PORT (default 55432),
# RAG_CI_PG_DB (default rag_ci). `scripts/ci_postgres.sh --stop` stops the cluster.
set -euo pipefail

dir=${RAG_CI_PG_DIR:-/tmp/rag-ci-postgres}
port=${RAG_CI_PG_PORT:-55432}
db=${RAG_CI_PG_DB:-rag_ci}
user=rag

log() { echo "ci_postgres: $*" >&2; }

find_bindir() {
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4,4n | tail -n 1)
    if [[ -n "$found" && -x "$found/initdb" && -x "$found/pg_ctl" ]]; then
        echo "$found"
    fi
}

# Run a command as the server's owner: `postgres` when we are root, else ourselves.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

bindir=$(find_bindir)
if [[ -z "$bindir" ]]; then
    if [[ $(id -u) -ne 0 ]]; then
        log "no PostgreSQL under /usr/lib/postgresql and not root: apt-get install postgresql"
        exit 1
    fi
    log "installing postgresql (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    bindir=$(find_bindir)
    [[ -n "$bindir" ]] || { log "postgresql installed but no initdb/pg_ctl found"; exit 1; }
fi

data=$dir/data
if [[ "${1:-}" == "--stop" ]]; then
    if [[ -f "$data/PG_VERSION" ]]; then
        as_owner "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    exit 0
fi

if [[ ! -f "$data/PG_VERSION" ]]; then
    log "creating a cluster in $data ($("$bindir/postgres" --version))"
    rm -rf "$data" "$dir/sock"
    mkdir -p "$dir/sock"
    head -c 18 /dev/urandom | base64 | tr -d '/+=\n' >"$dir/password"
    chmod 600 "$dir/password"
    if [[ $(id -u) -eq 0 ]]; then
        chown -R postgres:postgres "$dir"
    fi
    chmod 700 "$dir"
    (cd "$dir" && as_owner "$bindir/initdb" -D "$data" -U "$user" --pwfile="$dir/password" \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --no-locale \
        >"$dir/initdb.log" 2>&1) || { cat "$dir/initdb.log" >&2; exit 1; }
fi

if ! (cd "$dir" && as_owner "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1); then
    log "starting on 127.0.0.1:$port"
    (cd "$dir" && as_owner "$bindir/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -c listen_addresses=127.0.0.1 -k $dir/sock" start >/dev/null) \
        || { tail -n 20 "$dir/server.log" >&2; exit 1; }
fi

# The port the running server really uses (a reused cluster keeps the one it started with).
port=$(sed -n 4p "$data/postmaster.pid")
psql=(as_owner "$bindir/psql" -X -q -h "$dir/sock" -p "$port" -U "$user" -d postgres
    -v ON_ERROR_STOP=1)
if [[ -z $(cd "$dir" && "${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'") ]]; then
    (cd "$dir" && "${psql[@]}" -c "CREATE DATABASE \"$db\"")
fi

password=$(cat "$dir/password")
line="export RAG_TEST_POSTGRES_URL=postgresql://$user:$password@127.0.0.1:$port/$db"
if [[ -n "${1:-}" ]]; then
    echo "$line" >"$1"
    log "wrote $1"
else
    echo "$line"
fi
