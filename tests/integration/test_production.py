"""The production layout, running for real on loopback: Airflow 3 on PostgreSQL with
LocalExecutor (api-server, scheduler and dag-processor as separate processes), the night's
Spark jobs on a Spark standalone master and worker, MLflow on a tracking server over
PostgreSQL with proxied artifacts.

A night is triggered through Airflow's REST API and waited for; its lists, its MLflow run
and registered model are checked on the services; two more nights run with `airflow
backfill create`; headless Chromium loads the Airflow run page and the MLflow run page,
whose screenshots are kept in $NIGHTSHELF_TEST_ARTIFACTS (default var/test-artifacts).

    make test-integration      # about 20 minutes on 2 cores
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.support import services
from tests.support.spark_cluster import standalone

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DS = "2017-11-30"  # years back: the nights of a shop's own history
NIGHTS = [(date.fromisoformat(DS) + timedelta(days=d)).isoformat() for d in range(3)]
DAG = "recsys_nightly"
ARTIFACTS = Path(os.environ.get("NIGHTSHELF_TEST_ARTIFACTS", REPO / "var" / "test-artifacts"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Every service up, a synthetic shop landed for three nights and its history cleaned
    on the cluster; yields what the tests need, and stops everything afterwards."""
    for venv in (".venv", ".venv-airflow"):
        if not (REPO / venv / "bin" / "python").exists():
            pytest.fail(f"{venv} is missing: run `make install` first")
    work = tmp_path_factory.mktemp("production")
    home = work / "home"
    with services.postgres(("airflow", "mlflow")) as dbs, \
            services.mlflow_server(work / "mlflow", dbs["mlflow"]) as mlflow_url, \
            standalone(work / "spark") as master:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NIGHTSHELF", "AIRFLOW"))}
        env.update({
            "NIGHTSHELF_HOME": str(home),
            "NIGHTSHELF_PII_KEY": "integration-test-key",
            "NIGHTSHELF_JOB_VENV": str(REPO / ".venv"),
            "NIGHTSHELF_RETRY_DELAY_SECONDS": "5",
            "NIGHTSHELF__MLFLOW__TRACKING_URI": mlflow_url,
            # the landing and the lake by URI, on what stands for a shared mount, not the home
            "NIGHTSHELF__STORAGE__LANDING": (work / "shared" / "landing").as_uri(),
            "NIGHTSHELF__STORAGE__LAKE": (work / "shared" / "lake").as_uri(),
            "NIGHTSHELF__SPARK__MASTER": master,
            "NIGHTSHELF__SPARK__SHUFFLE_PARTITIONS": "2",
            "NIGHTSHELF__SHOP__USERS": "300",
            "NIGHTSHELF__SHOP__ITEMS": "80",
            "NIGHTSHELF__SHOP__DAYS": "10",
            "NIGHTSHELF__SHOP__END": NIGHTS[-1],
            "NIGHTSHELF__MODEL__EPOCHS": "8",
            # a night the shop has no data for (the scheduler's own latest) gives up soon
            "NIGHTSHELF__LANDING__WAIT_MINUTES": "1",
            "NIGHTSHELF__LANDING__POKE_SECONDS": "10",
        })
        cli = str(REPO / ".venv" / "bin" / "nightshelf")
        for args in (["generate"], ["bootstrap", "--until", DS]):
            proc = subprocess.run([cli, *args], env=env, text=True, capture_output=True)
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        spark_conn = json.dumps({"conn_type": "spark", "host": master})
        with services.airflow(work, dbs["airflow"],
                              {**env, "AIRFLOW_CONN_SPARK_DEFAULT": spark_conn}) as af:
            af.wait_for_dag(DAG)
            yield {"airflow": af, "home": home, "env": env, "mlflow": mlflow_url,
                   "spark_log": work / "spark" / "master.log", "work": work}


def _config(stack):
    from nightshelf.config import load_config

    return load_config(environ=stack["env"])


def _published(stack, ds):
    import pyarrow.parquet as pq

    from nightshelf import lake

    folder = lake.recommendations(_config(stack), ds)
    manifest = json.loads((folder / lake.MANIFEST).read_text())
    return pq.read_table(folder), manifest


def _failed_tasks(af, run_id):
    states = af.task_states(DAG, run_id)
    return {t: s for t, s in states.items() if s != "success"}


@pytest.fixture(scope="module")
def first_night(stack):
    af = stack["airflow"]
    run_id = f"integration__{DS}"
    af.trigger(DAG, DS, run_id)  # unpauses the DAG, POSTs the run
    run = af.wait_for_run(DAG, run_id, seconds=2400)
    assert run["state"] == "success", (_failed_tasks(af, run_id), _logs(stack))
    return run


def _logs(stack, tail=3000):
    out = []
    for log in sorted(stack["work"].glob("airflow-*.log")):
        out.append(f"== {log.name}\n{log.read_text(errors='ignore')[-tail:]}")
    return "\n".join(out)


def test_a_night_triggered_through_the_api_runs_every_task_on_the_services(stack, first_night):
    af = stack["airflow"]
    states = af.task_states(DAG, first_night["dag_run_id"])
    assert len(states) == 18 and set(states.values()) == {"success"}, states
    assert first_night["logical_date"].startswith(DS)
    table, manifest = _published(stack, DS)  # a plain pyarrow read of the folder
    assert table.num_rows == manifest["rows"] > 0 and manifest["ds"] == DS
    # every step went to the lake and landing the config named, none to the home's defaults
    assert (stack["work"] / "shared" / "lake" / "recommendations" / f"ds={DS}").is_dir()
    assert not (stack["home"] / "lake").exists() and not (stack["home"] / "landing").exists()
    ran = stack["spark_log"].read_text()
    for job in ("clean", "features", "context", "ranker-rows", "evaluate", "score"):
        assert f"Registering app nightshelf-{job}" in ran, job  # on the standalone master


def test_the_run_and_the_registered_model_are_on_the_mlflow_server(stack, first_night):
    from mlflow import MlflowClient

    cfg = _config(stack)
    _, manifest = _published(stack, DS)
    client = MlflowClient(tracking_uri=stack["mlflow"])
    run = client.get_run(manifest["challenger"]["run_id"])
    assert run.info.status == "FINISHED"
    exp = client.get_experiment(run.info.experiment_id)
    assert exp.name == cfg.mlflow.experiment
    assert exp.artifact_location.startswith("mlflow-artifacts:")  # the server's own store
    assert {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    versions = client.search_model_versions(f"name='{cfg.ranker.name}'")
    assert [v.run_id for v in versions] == [run.info.run_id]
    # the server holds the gate's decision: on a 300-user shop the first ranker may or may
    # not beat the baselines, so the test follows the decision the night recorded
    version = client.get_model_version(cfg.ranker.name, manifest["challenger"]["version"])
    promoted = manifest["challenger"]["promoted"]
    assert version.tags["gate"] == ("promoted" if promoted else "rejected")
    assert run.data.tags["gate.promoted"] == str(promoted)
    aliases = client.get_registered_model(cfg.ranker.name).aliases
    if promoted:
        assert aliases == {"champion": version.version}
        assert manifest["model_version"] == version.version
    else:  # no champion yet: the night served its best baseline
        assert aliases == {} and manifest["model_version"].startswith("baseline:"), manifest
    # the artifacts went through the server into its destination, not into the lake
    assert list((stack["work"] / "mlflow" / "artifacts").rglob("MLmodel"))
    assert not (stack["home"] / "mlflow" / "artifacts").exists()


def test_two_more_nights_by_airflow_backfill(stack, first_night):
    af = stack["airflow"]
    af.cli("backfill", "create", "--dag-id", DAG, "--from-date", NIGHTS[1],
           "--to-date", NIGHTS[2], "--max-active-runs", "1")
    deadline = time.monotonic() + 3600
    while True:
        runs = af.api("GET", f"/dags/{DAG}/dagRuns?run_type=backfill&limit=10")["dag_runs"]
        if len(runs) >= 2 and all(r["state"] in ("success", "failed") for r in runs):
            break
        assert time.monotonic() < deadline, runs
        time.sleep(10)
    by_day = {r["logical_date"][:10]: r for r in runs}
    assert sorted(by_day) == NIGHTS[1:], sorted(by_day)
    for ds, run in by_day.items():
        assert run["state"] == "success", (ds, _failed_tasks(af, run["dag_run_id"]))
        table, manifest = _published(stack, ds)
        assert table.num_rows == manifest["rows"] > 0 and manifest["ds"] == ds
        # each backfill night scored the lists the night before it published
        served = manifest["served_feedback"]
        prev = (date.fromisoformat(ds) - timedelta(days=1)).isoformat()
        assert served["served_ds"] == prev and served["skipped"] is None, served
        assert 0 < served["users_active"] <= served["users_listed"]
        assert 0 <= served["overall"]["ndcg"] <= 1 and served["by_reason"]


def test_the_airflow_and_mlflow_pages_show_the_run(stack, first_night):
    from mlflow import MlflowClient

    af = stack["airflow"]
    run_id = first_night["dag_run_id"]
    dom = services.screenshot(f"{af.url}/dags/{DAG}/runs/{run_id}",
                              ARTIFACTS / "airflow-run.png")
    assert run_id in dom
    _, manifest = _published(stack, DS)
    run = MlflowClient(tracking_uri=stack["mlflow"]).get_run(manifest["challenger"]["run_id"])
    dom = services.screenshot(
        f"{stack['mlflow']}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}",
        ARTIFACTS / "mlflow-run.png")
    assert run.info.run_name in dom
    for png in ("airflow-run.png", "mlflow-run.png"):
        assert (ARTIFACTS / png).stat().st_size > 10_000, png
    print(f"screenshots in {ARTIFACTS}", file=sys.stderr)
