#!/usr/bin/env bash
# A private PostgreSQL for kes read models and tests: installs the Debian server package
# when missing, then starts (idempotently) a cluster in $KES_PG_DIR on $KES_PG_PORT,
# trust auth on 127.0.0.1 only, running as the `postgres` user. Prints the DSN on stdout
# (everything else goes to stderr), so `export KES_POSTGRES_DSN=$(scripts/postgres.sh)` works.
#   scripts/postgres.sh          start (or reuse) and print the DSN
#   scripts/postgres.sh stop     stop the cluster
set -euo pipefail

# Outside the checkout: the postgres user must reach it, and a checkout under /root
# (mode 700) would not let it.
DATA="${KES_PG_DIR:-/var/tmp/kes-postgres-${KES_PG_PORT:-15432}}"
# Below Linux's ephemeral port range, so no client connection can be holding it.
PORT="${KES_PG_PORT:-15432}"
DSN="postgresql://postgres@127.0.0.1:${PORT}/postgres"

log() { echo "postgres.sh: $*" >&2; }

find_bin() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
            echo "$d"
        fi
    done | sort -V | tail -n1
}

as_postgres() {
    if [[ "$(id -un)" == "postgres" ]]; then
        "$@"
    elif command -v runuser >/dev/null; then
        runuser -u postgres -- "$@"
    else
        su postgres -s /bin/bash -c "$(printf '%q ' "$@")"
    fi
}

BIN="$(find_bin)"
if [[ -z "$BIN" ]]; then
    if [[ "$(id -u)" != "0" ]]; then
        log "PostgreSQL server is not installed and we are not root: run 'apt-get install -y postgresql' (or set KES_POSTGRES_DSN to a server you have)."
        exit 1
    fi
    log "installing the PostgreSQL server (apt-get install postgresql)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    BIN="$(find_bin)"
    # The package may start its own cluster on 5432; ours is separate and stays private.
fi

if [[ "${1:-start}" == "stop" ]]; then
    if [[ -f "$DATA/PG_VERSION" ]]; then
        as_postgres "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >&2 || true
    fi
    exit 0
fi

mkdir -p "$(dirname "$DATA")"
if [[ ! -f "$DATA/PG_VERSION" ]]; then
    log "initdb $DATA"
    mkdir -p "$DATA"
    chown postgres: "$DATA" 2>/dev/null || true
    chmod 700 "$DATA"
    as_postgres "$BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 >/dev/null
    {
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $PORT"
        echo "unix_socket_directories = ''"
        echo "max_connections = 200"
        echo "fsync = on"
    } >>"$DATA/postgresql.conf"
    echo "host all all 127.0.0.1/32 trust" >"$DATA/pg_hba.conf"
fi

if ! as_postgres "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    log "starting PostgreSQL on 127.0.0.1:$PORT"
    as_postgres "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 start >&2
fi
for _ in $(seq 1 60); do
    if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
        echo "$DSN"
        exit 0
    fi
    sleep 0.5
done
log "PostgreSQL did not accept connections on 127.0.0.1:$PORT; see $DATA/server.log"
exit 1
