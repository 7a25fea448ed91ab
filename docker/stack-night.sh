#!/usr/bin/env bash
# `make stack-night DS=YYYY-MM-DD`, run inside the stack's scheduler container: when nothing
# has landed for DS, land a synthetic shop that ends on DS and clean its history on the
# stack's Spark cluster (GENERATE=0: fail instead); then trigger the night through Airflow's
# REST API and follow it task by task.
set -euo pipefail
PATH="${NIGHTSHELF_JOB_VENV:-/opt/nightshelf/.venv}/bin:$PATH"  # the job environment's CLI
DS=${1:?usage: stack-night.sh YYYY-MM-DD}
landing=$(python -c "import sys; from nightshelf import lake; from nightshelf.config import \
load_config; print(lake.landing_events(load_config(), sys.argv[1]))" "$DS")
if [ ! -d "$landing" ]; then
    if [ "${GENERATE:-1}" != 1 ]; then
        echo "nothing has landed for $DS ($landing)" >&2
        exit 3
    fi
    echo "== landing a synthetic shop that ends on $DS"
    nightshelf generate --end "$DS"
    echo "== cleaning its history on the stack's Spark cluster"
    nightshelf bootstrap --until "$DS" --only-new
fi
echo "== the night $DS through Airflow (http://localhost:${AIRFLOW_PORT:-8080} from the host)"
exec nightshelf trigger --ds "$DS" --api http://airflow-apiserver:8080 --run-id "stack__${DS}__$(date +%s)"
