"""
# recsys_nightly

One night of Nightshelf for the logical date `ds`:

```
wait_for_landing -> land -> validate_raw -> clean (Spark) -> validate_clean
     -> features (Spark) -> validate_features
     -> context (Spark: popularity, co-visitation) -> train (TF: SASRec)
     -> ranker_rows (Spark) -> train_ranker (TF: DCN) -> evaluate (Spark: every model)
     -> gate (champion/challenger) -> score (Spark: top-N) -> validate_recommendations
     -> drift (night over night) -> publish (atomic) -> report
```

The night starts when the day's landing is complete (its `landing.marker` file): the sensor
waits for it in reschedule mode, holding no worker slot, and fails the night after
`landing.wait_minutes`. A step that fails on the user's input (a missing or unreadable day,
a bad config, a failed suite: the CLI's exit code 3) fails at once; anything else retries.

Every task reads only partitions of `ds` (features: the history up to its end) and overwrites
only its own output; a failed suite or drift check stops the night before anything is
published.

The Spark jobs (everything whose size grows with users or events) go through
`SparkSubmitOperator` on the `spark_default` connection: point it at a cluster
(`spark://...`, `yarn`, `k8s://...`) to scale out. Every other task runs `nightshelf <step>`
in the job environment (`$NIGHTSHELF_JOB_VENV`), not in the scheduler's.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.sensors.python import PythonSensor
from airflow.sdk import Asset, CronDataIntervalTimetable, Param, chain, dag
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from nightshelf import lake, package
from nightshelf.config import USER_ERROR_EXIT, load_config
from nightshelf.failures import airflow_callback

REPO = Path(__file__).resolve().parents[1]
JOB_VENV = Path(os.environ.get("NIGHTSHELF_JOB_VENV", REPO / ".venv"))
RETRY_DELAY = timedelta(seconds=int(os.environ.get("NIGHTSHELF_RETRY_DELAY_SECONDS", "300")))
DS = "{{ ds }}"

CFG = load_config()  # the deployment's config as the scheduler sees it: the Params' defaults
# downstream DAGs schedule on this: `@dag(schedule=[RECOMMENDATIONS])`
RECOMMENDATIONS = Asset(name="nightshelf_recommendations",
                        uri=f"file://{lake.lake(CFG, 'recommendations')}")

# added to the worker's environment (NIGHTSHELF_HOME etc. pass through): the job venv first,
# and the run's top-N (a DAG Param) for every step that reads it
JOB_ENV = {
    "PATH": f"{JOB_VENV / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
    "PYSPARK_PYTHON": str(JOB_VENV / "bin" / "python"),
    "NIGHTSHELF__SCORING__TOP_N": "{{ params.top_n }}",
}
FORCE = "{{ ' --force' if params.force_retrain else '' }}"
# the in-task Spark sessions (validation) on the same master as the spark-submitted jobs
CONN_MASTER = ("{{ conn.spark_default.host }}{{ (':' ~ conn.spark_default.port) "
               "if conn.spark_default.port else '' }}")


USER_ERROR = (f"failed on its input or configuration (exit code {USER_ERROR_EXIT}): a retry "
              f"meets the same input; the log above names it and the fix")


class NightStep(BashOperator):
    """`nightshelf <command>`: exit code USER_ERROR_EXIT (a `UserError`) fails the task at
    once, without its retries; any other failure retries."""

    def __init__(self, **kwargs):
        super().__init__(skip_on_exit_code=USER_ERROR_EXIT, **kwargs)

    def execute(self, context):
        try:
            return super().execute(context)
        except AirflowSkipException as exc:  # the user-error code, which BashOperator skips on
            raise AirflowFailException(f"{self.task_id} {USER_ERROR}") from exc


class NightSparkJob(SparkSubmitOperator):
    """A spark-submitted job: the job code travels with it as a zip (`--py-files`, built or
    reused for the code this worker runs); the driver's exit code USER_ERROR_EXIT fails it
    at once."""

    def execute(self, context):
        self.py_files = str(package.job_zip(CFG.home / "dist"))
        try:
            return super().execute(context)
        except AirflowException as exc:
            driver = getattr(self._hook, "_submit_sp", None)
            if driver is not None and driver.returncode == USER_ERROR_EXIT:
                raise AirflowFailException(f"{self.task_id} {USER_ERROR}") from exc
            raise


def landing_complete(ds: str) -> bool:
    """The sensor's poke: Airflow passes the run's `ds` from its context."""
    done = lake.landing_complete(CFG, ds)
    if not done:
        print(f"waiting for {lake.landing_events(CFG, ds)}/{CFG.landing.marker or '<data file>'}")
    return done


def step(task_id: str, command: str, force: bool = False, **kwargs) -> BashOperator:
    """A task that runs `nightshelf <command> --ds <ds>` in the job environment (`force`: and
    `--force` when the run's `force_retrain` Param says so)."""
    return NightStep(task_id=task_id,
                     bash_command=f"nightshelf {command} --ds {DS}{FORCE if force else ''}",
                     env={**JOB_ENV, "NIGHTSHELF__SPARK__MASTER": CONN_MASTER},
                     append_env=True, **kwargs)


def spark_job(task_id: str, job: str) -> SparkSubmitOperator:
    return NightSparkJob(
        task_id=task_id, application=str(REPO / "jobs" / f"{job}.py"),
        application_args=["--ds", DS], conn_id="spark_default", name=f"nightshelf-{job}",
        conf=CFG.spark.submit_conf(JOB_ENV["PYSPARK_PYTHON"]), env_vars=JOB_ENV, verbose=False)


@dag(
    dag_id="recsys_nightly",
    # a run per day after the day ends, its logical date (`ds`) the day it processes; not
    # Airflow 3's default trigger timetable, whose midnight run would be dated the new day
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    # no start_date: a shop runs and backfills the nights of its own history, whatever
    # their date (a start date would leave earlier runs with no task scheduled)
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["nightshelf", "recsys", "nightly"],
    params={
        "force_retrain": Param(False, type="boolean",
                               description="retrain SASRec and the ranker even if this night "
                                           "already trained them on the same inputs"),
        "top_n": Param(CFG.scoring.top_n, type="integer", minimum=1,
                       description="items per user in the published lists"),
    },
    default_args={"owner": "nightshelf", "retries": 2, "retry_delay": RETRY_DELAY,
                  # tier L's longest task (evaluate) takes 20 minutes on 2 cores
                  "execution_timeout": timedelta(hours=3),
                  "on_failure_callback": airflow_callback},
)
def recsys_nightly():
    # a failed suite will fail again on the same data: no retries for validation
    no_retry = {"retries": 0}
    chain(
        PythonSensor(task_id="wait_for_landing", python_callable=landing_complete,
                     mode="reschedule", poke_interval=CFG.landing.poke_seconds,
                     timeout=CFG.landing.wait_minutes * 60),
        step("land", "land"),
        step("validate_raw", "validate --stage raw", **no_retry),
        spark_job("clean", "clean"),
        step("validate_clean", "validate --stage clean", **no_retry),
        spark_job("features", "features"),
        step("validate_features", "validate --stage features", **no_retry),
        spark_job("context", "context"),
        step("train", "train", force=True),
        spark_job("ranker_rows", "ranker_rows"),
        step("train_ranker", "train-ranker", force=True),
        spark_job("evaluate", "evaluate"),
        step("gate", "gate"),
        spark_job("score", "score"),
        step("validate_recommendations", "validate --stage recommendations", **no_retry),
        step("drift", "drift", **no_retry),
        step("publish", "publish", outlets=[RECOMMENDATIONS]),
        step("report", "report"),
    )


recsys_nightly()
