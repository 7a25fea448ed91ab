"""Load every DAG once: no import errors, and recsys_nightly wired as designed."""

from pathlib import Path

import pytest

pytest.importorskip("airflow")

from airflow.dag_processing.dagbag import DagBag  # noqa: E402
from airflow.providers.apache.spark.operators.spark_submit import (  # noqa: E402
    SparkSubmitOperator,
)
from airflow.sdk.exceptions import AirflowException, AirflowFailException  # noqa: E402

pytestmark = pytest.mark.airflow

REPO = Path(__file__).resolve().parents[2]
SPARK_JOBS = ("clean", "features", "context", "ranker_rows", "evaluate", "score")
ORDER = ["wait_for_landing", "land", "validate_raw", "clean", "validate_clean", "features",
         "validate_features", "context", "train", "ranker_rows", "train_ranker", "evaluate",
         "gate", "score", "validate_recommendations", "drift", "publish", "report"]


@pytest.fixture(scope="module")
def bag():
    return DagBag(dag_folder=str(REPO / "dags"))


def test_no_import_errors(bag):
    assert bag.import_errors == {}
    assert "recsys_nightly" in bag.dag_ids


def test_schedule_tags_docs_and_retries(bag):
    dag = bag.dags["recsys_nightly"]
    assert dag.catchup is False
    # a run after each day ends, dated (ds) the day it processes: a data-interval timetable,
    # not Airflow 3's default trigger timetable (its midnight run is dated the new day)
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert dag.timetable.expression == "0 0 * * *"
    assert "nightshelf" in dag.tags
    assert dag.doc_md and "validate_recommendations" in dag.doc_md
    for task in dag.tasks:
        if task.task_id.startswith("validate_") or task.task_id == "drift":
            assert task.retries == 0, task.task_id  # the same data fails the same way
        else:
            assert task.retries >= 1, task.task_id


def test_tasks_run_in_order(bag):
    dag = bag.dags["recsys_nightly"]
    assert sorted(t.task_id for t in dag.tasks) == sorted(ORDER)
    for up, down in zip(ORDER, ORDER[1:]):
        assert dag.get_task(down).upstream_task_ids == {up}


def test_spark_jobs_go_through_the_spark_connection(bag):
    dag = bag.dags["recsys_nightly"]
    for task_id in SPARK_JOBS:
        task = dag.get_task(task_id)
        assert isinstance(task, SparkSubmitOperator)
        assert task._conn_id == "spark_default"
        assert Path(task.application).is_file()
        assert task.application_args == ["--ds", "{{ ds }}"]


def test_other_steps_call_the_cli_in_the_job_environment(bag):
    dag = bag.dags["recsys_nightly"]
    for task in dag.tasks:
        if task.task_id in SPARK_JOBS or task.task_id == "wait_for_landing":
            continue
        assert task.bash_command.startswith("nightshelf ")
        force = "{{ ' --force' if params.force_retrain else '' }}"
        want = "--ds {{ ds }}" + (force if task.task_id in ("train", "train_ranker") else "")
        assert task.bash_command.endswith(want), task.task_id
        assert task.env["PATH"].split(":")[0].endswith("/bin")


def test_params_asset_timeouts_and_failure_callback(bag):
    import jinja2

    from nightshelf.failures import airflow_callback

    dag = bag.dags["recsys_nightly"]
    assert dag.params["force_retrain"] is False and dag.params["top_n"] >= 1
    render = jinja2.Template(dag.get_task("train").bash_command)
    assert render.render(ds="2026-11-22", params={"force_retrain": True}) == (
        "nightshelf train --ds 2026-11-22 --force")
    assert render.render(ds="2026-11-22", params={"force_retrain": False}) == (
        "nightshelf train --ds 2026-11-22")
    assert dag.get_task("score").env_vars["NIGHTSHELF__SCORING__TOP_N"] == "{{ params.top_n }}"
    (outlet,) = dag.get_task("publish").outlets
    assert outlet.name == "nightshelf_recommendations"
    assert outlet.uri.startswith("file://") and outlet.uri.endswith("/recommendations")
    for task in dag.tasks:
        assert task.execution_timeout is not None, task.task_id
        assert airflow_callback in (task.on_failure_callback or []) or (
            task.on_failure_callback is airflow_callback), task.task_id


def test_the_night_waits_for_the_landing_marker_without_holding_a_slot(bag):
    sensor = bag.dags["recsys_nightly"].get_task("wait_for_landing")
    assert sensor.mode == "reschedule"
    assert sensor.timeout > 0 and sensor.poke_interval > 0
    assert not sensor.op_args and not sensor.op_kwargs  # `ds` comes from the context


@pytest.mark.parametrize("code, fails_at_once", [(3, True), (1, False)])
def test_a_user_error_fails_its_step_at_once_other_failures_retry(bag, code, fails_at_once):
    """The real operator runs a real bash: the CLI's user-error exit code (3) raises
    AirflowFailException (no retry), any other failure a plain AirflowException."""
    from airflow.sdk.definitions.context import Context

    dag = bag.dags["recsys_nightly"]
    land = dag.get_task("land")
    task = type(land)(task_id="probe", bash_command=f"echo 'bad day' >&2; exit {code}")
    with pytest.raises(AirflowException) as raised:
        task.execute(Context())
    assert isinstance(raised.value, AirflowFailException) is fails_at_once
    assert type(dag.get_task("clean")).__name__ == "NightSparkJob"


def test_every_spark_session_follows_the_connection_with_the_configured_resources(bag):
    """The spark-submitted jobs get their resources and the workers' Python from the config;
    the in-task sessions (validation) get the connection's master."""
    import jinja2
    from airflow.models import Connection

    from nightshelf.config import load_config

    dag = bag.dags["recsys_nightly"]
    cfg = load_config()
    for task_id in SPARK_JOBS:
        conf = dag.get_task(task_id).conf
        assert conf["spark.driver.memory"] == cfg.spark.driver_memory
        assert conf["spark.executor.memory"] == cfg.spark.executor_memory
        assert conf["spark.pyspark.python"].endswith("/bin/python")
    master = dag.get_task("validate_clean").env["NIGHTSHELF__SPARK__MASTER"]

    class Conns:  # what Airflow's `conn` template accessor returns for spark_default
        def __init__(self, conn):
            self.spark_default = conn
    for conn, want in ((Connection(conn_id="spark_default", conn_type="spark",
                                   host="spark://master", port=7077), "spark://master:7077"),
                       (Connection(conn_id="spark_default", conn_type="spark",
                                   host="local[*]"), "local[*]")):
        assert jinja2.Template(master).render(conn=Conns(conn)) == want


def test_a_spark_job_ships_the_job_code_as_a_zip(bag, tmp_path, monkeypatch):
    """What reaches spark-submit: `--py-files` with the zip of this checkout's packages."""
    import zipfile

    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

    task = bag.dags["recsys_nightly"].get_task("score")
    seen = {}

    def submit(hook, application, **kwargs):
        seen["cmd"] = hook._build_spark_submit_command(application)
    monkeypatch.setattr(SparkSubmitHook, "submit", submit)
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", '{"conn_type": "spark", "host": "local[2]"}')
    task.execute(context={})
    cmd = seen["cmd"]
    zipped = Path(cmd[cmd.index("--py-files") + 1])
    assert zipped.name.startswith("nightshelf-jobs-") and zipped.is_file()
    assert "training/partitions.py" in zipfile.ZipFile(zipped).namelist()
    assert cmd[cmd.index("--master") + 1] == "local[2]"
    assert f"spark.pyspark.python={task.conf['spark.pyspark.python']}" in cmd
