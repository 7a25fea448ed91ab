#!/usr/bin/env bash
# The stack's one-off Airflow set-up: wait for PostgreSQL, migrate the metadata database.
set -euo pipefail
for i in $(seq 60); do
    airflow db check >/dev/null 2>&1 && break
    echo "waiting for the database ($i)"; sleep 2
done
airflow db migrate
echo "airflow database ready"
