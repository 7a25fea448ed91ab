"""The one place a SparkSession is built, for spark-submitted jobs and for in-task validation."""

from __future__ import annotations

import logging
import os

from nightshelf.config import Config

log = logging.getLogger(__name__)


def get_spark(cfg: Config, app: str):
    """A SparkSession configured for Nightshelf.

    Under spark-submit the master comes from the submit command (the Airflow `spark_default`
    connection); run directly, it comes from `spark.master` in the config.
    """
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(f"nightshelf-{app}")
    if not os.environ.get("PYSPARK_GATEWAY_PORT"):  # not launched by spark-submit
        builder = builder.master(cfg.spark.master)
    spark = (
        builder.config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(cfg.spark.shuffle_partitions))
        .config("spark.driver.memory", cfg.spark.driver_memory)
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
