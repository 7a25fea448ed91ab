#!/usr/bin/env bash
# First start: initdb into $PGDATA (a volume), a password for POSTGRES_USER, one database per
# name in POSTGRES_DATABASES. Every start: the server on all interfaces, password auth.
set -euo pipefail
BIN=/usr/lib/postgresql/15/bin
: "${POSTGRES_USER:=nightshelf}" "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    "$BIN/initdb" -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" -E UTF8 \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    "$BIN/pg_ctl" -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
    for db in ${POSTGRES_DATABASES:-}; do
        "$BIN/createdb" -U "$POSTGRES_USER" "$db"
        echo "created database $db"
    done
    "$BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec "$BIN/postgres" -D "$PGDATA" -c listen_addresses='*' -c max_connections=200
