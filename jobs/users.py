"""The sequences table spread over the cluster, and a worker function mapped over its users.

Every per-user job (ranker rows, holdout evaluation, scoring) reads the night's sequences,
repartitions them by user (`spark.shuffle_partitions` partitions, at least one per
`USERS_PER_PARTITION` users), sorts each partition by user and runs one
`training.partitions` function over each partition's Arrow batches (`mapInArrow`). The
partitioning depends on the configuration and the data only, never on the cluster, so a
worker's batches hold the same users on `local[*]` and on any cluster: the same numbers
come out, to the last bit.
"""

from __future__ import annotations

import functools

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from nightshelf import lake
from nightshelf import schema as S
from nightshelf.config import Config

USERS_PER_PARTITION = 50_000


def sequences(spark: SparkSession, cfg: Config, ds: str) -> DataFrame:
    return spark.read.parquet(str(lake.features(cfg, "sequences", ds)))


def map_users(spark: SparkSession, seqs: DataFrame, fn, job, schema) -> DataFrame:
    """`fn(job, batches)` over the users of `seqs`, yielding Arrow batches of `schema`
    (a pyarrow schema)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    users = seqs.count()
    parts = max(job.cfg.spark.shuffle_partitions, -(-users // USERS_PER_PARTITION))
    spread = seqs.repartition(parts, F.col(S.USER)).sortWithinPartitions(S.USER)
    return spread.mapInArrow(functools.partial(fn, job), from_arrow_schema(schema))
