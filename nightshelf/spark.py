"""The one place a SparkSession is built, for spark-submitted jobs and for in-task validation."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable

from nightshelf.config import USER_ERROR_EXIT, Config, UserError, load_config
from nightshelf.logs import setup_logging
from nightshelf.package import job_zip

log = logging.getLogger(__name__)


def get_spark(cfg: Config, app: str):
    """A SparkSession configured for Nightshelf.

    Under spark-submit the master, resources and job code come from the submit command (the
    Airflow `spark_default` connection and `SparkConfig.submit_conf`); run directly (in-task
    validation, tests), the same come from the config (`spark.master`, which the DAG sets to
    the connection's) and the job zip.
    """
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(f"nightshelf-{app}")
    if not os.environ.get("PYSPARK_GATEWAY_PORT"):  # not launched by spark-submit: as it would
        builder = builder.master(cfg.spark.master)
        for key, value in cfg.spark.submit_conf(sys.executable).items():
            builder = builder.config(key, value)
        builder = builder.config("spark.submit.pyFiles", str(job_zip(cfg.home / "dist")))
    spark = (
        builder.config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(cfg.spark.shuffle_partitions))
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.ui.enabled", "false")
        # Python workers run TensorFlow side by side, one per core: one thread each
        .config("spark.executorEnv.TF_NUM_INTRAOP_THREADS", "1")
        .config("spark.executorEnv.TF_NUM_INTEROP_THREADS", "1")
        .config("spark.executorEnv.OMP_NUM_THREADS", "1")
        .config("spark.executorEnv.TF_CPP_MIN_LOG_LEVEL", "2")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    log.info("spark %s on %s", spark.version, spark.sparkContext.master)
    return spark


def job_main(run: Callable[[object, Config, str], object], app: str, doc: str,
             argv: list[str] | None = None) -> None:
    """The thin `main()` of a spark-submitted job: `--ds YYYY-MM-DD [--config F]`, logging,
    one session for `run(spark, cfg, ds)`, stopped whatever happens. A `UserError` (bad
    input or config) is logged without a traceback and exits USER_ERROR_EXIT, which the DAG
    does not retry."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--ds", required=True)
    p.add_argument("--config")
    args = p.parse_args(argv)
    setup_logging()
    try:
        cfg = load_config(args.config)
        spark = get_spark(cfg, app)
        try:
            run(spark, cfg, args.ds)
        finally:
            spark.stop()
    except UserError as exc:
        log.error("nightshelf %s: %s", app, exc)
        raise SystemExit(USER_ERROR_EXIT) from None
