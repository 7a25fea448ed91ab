"""The docker stack (docker/compose.yaml), for real: the images built from docker/, the stack
brought up with `make stack-up`, a night dated years back landed and run in it with `make
stack-night` (through Airflow's REST API, its Spark jobs on the stack's standalone cluster,
MLflow on the stack's server), its lists read inside the stack, then `make stack-down`.

    make test-stack      # needs a Docker engine and docker-compose (or `docker compose`)

Where images cannot be pulled, build a local base first (`docker/base-image.sh`) and run with
NIGHTSHELF_BASE_IMAGE=nightshelf/base:bookworm (taken by default when it exists).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.support.spark_cluster import free_port

pytestmark = [pytest.mark.stack, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DS = "2017-11-30"
LOCAL_BASE = "nightshelf/base:bookworm"


def _make(env: dict, *args: str, timeout: float, check: bool = True):
    proc = subprocess.run(["make", "--no-print-directory", *args], cwd=REPO, env=env,
                          text=True, capture_output=True, timeout=timeout)
    print(proc.stdout[-6000:], proc.stderr[-3000:], sep="\n")
    if check:
        assert proc.returncode == 0, f"make {' '.join(args)}: {proc.stderr[-3000:]}"
    return proc


def _compose(*args: str) -> list[str]:
    """The stack's compose command, chosen as the Makefile chooses it (v2 when installed)."""
    v2 = subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    return [*(["docker", "compose"] if v2 else ["docker-compose"]),
            "-p", "nightshelf-test", "-f", "compose.yaml", *args]


def _base_image() -> str:
    if os.environ.get("NIGHTSHELF_BASE_IMAGE"):
        return os.environ["NIGHTSHELF_BASE_IMAGE"]
    found = subprocess.run(["docker", "image", "inspect", LOCAL_BASE], capture_output=True)
    return LOCAL_BASE if found.returncode == 0 else "python:3.11-slim-bookworm"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if not shutil.which("docker") or subprocess.run(["docker", "info"],
                                                    capture_output=True).returncode:
        pytest.fail("no Docker engine answers `docker info`: start dockerd first")
    work = tmp_path_factory.mktemp("stack")
    env_file = work / "stack.env"
    env_file.write_text((REPO / "docker" / "stack.env").read_text() + "\n".join([
        "NIGHTSHELF__SHOP__USERS=300", "NIGHTSHELF__SHOP__ITEMS=80",
        "NIGHTSHELF__SHOP__DAYS=10", "NIGHTSHELF__MODEL__EPOCHS=8",
        "NIGHTSHELF__SPARK__SHUFFLE_PARTITIONS=2", ""]))
    ports = {name: str(free_port()) for name in ("AIRFLOW_PORT", "MLFLOW_PORT", "SPARK_UI_PORT")}
    env = {**os.environ, **ports, "BASE_IMAGE": _base_image(),
           "STACK_PROJECT": "nightshelf-test", "NIGHTSHELF_STACK_ENV": str(env_file),
           "AIRFLOW_JWT_SECRET": os.urandom(16).hex()}
    try:
        _make(env, "stack-up", timeout=3600)
        yield {"env": env, "ports": ports}
    finally:
        logs = subprocess.run(_compose("logs", "--no-color", "--tail", "60"),
                              cwd=REPO / "docker", env=env, text=True, capture_output=True)
        (work / "compose.log").write_text(logs.stdout + logs.stderr)
        _make(env, "stack-down", timeout=600, check=False)


def _in_scheduler(stack, code: str) -> str:
    proc = subprocess.run(
        _compose("exec", "-T", "airflow-scheduler", "/opt/nightshelf/.venv/bin/python",
                 "-c", code),
        cwd=REPO / "docker", env=stack["env"], text=True, capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _get(url: str):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def test_a_night_years_back_runs_in_the_stack_and_publishes(stack):
    night = _make(stack["env"], "stack-night", f"DS={DS}", timeout=3600)
    assert f"night {DS} (stack__{DS}__" in night.stdout and "succeeded" in night.stdout
    assert "publish success" in night.stdout  # followed task by task

    out = json.loads(_in_scheduler(stack, f"""
import json, pyarrow.parquet as pq
from nightshelf import lake
from nightshelf.config import load_config
cfg = load_config()
folder = lake.recommendations(cfg, "{DS}")
table = pq.read_table(folder)
manifest = json.loads((folder / lake.MANIFEST).read_text())
print(json.dumps({{"rows": table.num_rows, "users": len(set(table.column("user_id").to_pylist())),
                  "manifest": manifest}}))
""").strip().splitlines()[-1])
    assert out["rows"] > 0 and out["users"] > 0
    assert out["manifest"]["ds"] == DS

    # the night's Spark jobs ran on the stack's standalone master
    master = _get(f"http://127.0.0.1:{stack['ports']['SPARK_UI_PORT']}/json/")
    apps = {a["name"] for a in master["completedapps"]}
    for job in ("clean", "features", "context", "ranker-rows", "evaluate", "score"):
        assert f"nightshelf-{job}" in apps, apps

    # ... and MLflow on the stack's server: the night's run, the registered versions, and the
    # gate's decision as the manifest tells it (the champion alias if it promoted)
    mlflow = f"http://127.0.0.1:{stack['ports']['MLFLOW_PORT']}/api/2.0/mlflow"
    challenger = out["manifest"]["challenger"]
    run = _get(f"{mlflow}/runs/get?run_id={challenger['run_id']}")["run"]
    assert run["info"]["status"] == "FINISHED"
    assert run["info"]["artifact_uri"].startswith("mlflow-artifacts:")  # the server's store
    models = {m["name"]: m for m in _get(
        f"{mlflow}/registered-models/search?max_results=50")["registered_models"]}
    ranker = models[out["manifest"]["model_name"]]
    aliases = {a["alias"]: a["version"] for a in ranker.get("aliases", [])}
    if challenger["promoted"]:
        assert aliases.get("champion") == challenger["version"], aliases
    else:
        assert "champion" not in aliases and challenger["reason"], challenger
    print(f"gate: promoted={challenger['promoted']} ({challenger['reason']}); serving "
          f"{out['manifest']['serving']} v{out['manifest']['model_version']}")
