"""Item context of a night as of its points in time: popularity, users per item, first
seen, and co-visitation (each item's top neighbours), all from the sequences table.

A night needs them as of each label window's start (the ranker's training rows), the
holdout split (evaluation) and the cutoff (serving). Everything grows with users and
events, so it is Spark SQL; the per-user work reads the results as catalog-sized tables.

Co-visitation is the cosine of co-occurrence in users' histories (`training.baselines.
ItemKNN` is the same definition in NumPy, the reference the tests hold this job to):

    sim(i, j) = |users with i and j| / (sqrt(|users with i| * |users with j|) + shrink)

keeping each item's `neighbours` most similar items (ties: lower item id first).

Run with spark-submit (the DAG does this through SparkSubmitOperator):

    spark-submit jobs/context.py --ds 2026-11-22
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from jobs.storage import write_atomically, write_json
from nightshelf import lake
from nightshelf import schema as S
from nightshelf.config import Config
from nightshelf.spark import job_main

log = logging.getLogger("nightshelf.context")

NEIGHBOURS, SHRINK = 100, 10.0
NEIGHBOUR, SIM = "neighbour_id", "sim"
POP_1D, POP_WINDOW, N_USERS, FIRST_SEEN = "pop_1d", "pop_window", "n_users", "first_seen"


def steps_of(sequences: DataFrame) -> DataFrame:
    """One row per step of the sequences table: user, item, event type, event time."""
    zipped = F.arrays_zip(F.col(S.SEQ_ITEMS).alias(S.ITEM),
                          F.col(S.SEQ_TYPES).alias(S.EVENT_TYPE),
                          F.col(S.SEQ_TIMES).alias(S.EVENT_TIME))
    return (sequences.select(S.USER, F.explode(zipped).alias("_s"))
            .select(S.USER, "_s.*"))


def before(steps: DataFrame, at: datetime) -> DataFrame:
    return steps.filter(F.col(S.EVENT_TIME) < F.lit(at))


def item_stats(steps: DataFrame, *, at: datetime, popularity_days: int,
               weights: dict[str, float]) -> DataFrame:
    """Per item seen before `at`: event-weighted interactions in the day and in the
    popularity window before `at`, distinct users, first time seen."""
    ev = before(steps, at)
    w = F.create_map(*[F.lit(x) for kv in weights.items() for x in kv])[F.col(S.EVENT_TYPE)]
    w = F.coalesce(w, F.lit(1.0))

    def within(days: int):
        return F.sum(F.when(F.col(S.EVENT_TIME) >= F.lit(at - timedelta(days=days)), w)
                     .otherwise(0.0)).cast("float")

    return ev.groupBy(S.ITEM).agg(within(1).alias(POP_1D),
                                  within(popularity_days).alias(POP_WINDOW),
                                  F.countDistinct(S.USER).cast("long").alias(N_USERS),
                                  F.min(S.EVENT_TIME).alias(FIRST_SEEN))


def covisitation(steps: DataFrame, *, at: datetime, neighbours: int = NEIGHBOURS,
                 shrink: float = SHRINK) -> DataFrame:
    """(item_id, neighbour_id, sim): each item's top co-visited items before `at`."""
    pairs = before(steps, at).select(S.USER, S.ITEM).distinct()
    n = pairs.groupBy(S.ITEM).agg(F.count("*").alias("_n"))
    a, b = pairs.alias("a"), pairs.alias("b")
    co = (a.join(b, (F.col(f"a.{S.USER}") == F.col(f"b.{S.USER}"))
                 & (F.col(f"a.{S.ITEM}") != F.col(f"b.{S.ITEM}")))
          .groupBy(F.col(f"a.{S.ITEM}").alias(S.ITEM), F.col(f"b.{S.ITEM}").alias(NEIGHBOUR))
          .agg(F.count("*").alias("_co")))
    ni, nj = n.alias("ni"), n.select(F.col(S.ITEM).alias(NEIGHBOUR), F.col("_n").alias("_m"))
    sim = (co.join(ni, S.ITEM).join(nj, NEIGHBOUR)
           .withColumn(SIM, (F.col("_co") / (F.sqrt(F.col("_n") * F.col("_m")) + F.lit(shrink)))
                       .cast("float")))
    best = Window.partitionBy(S.ITEM).orderBy(F.col(SIM).desc(), F.col(NEIGHBOUR))
    return (sim.withColumn("_r", F.row_number().over(best)).filter(F.col("_r") <= neighbours)
            .select(S.ITEM, NEIGHBOUR, SIM))


def vocabulary(steps: DataFrame, catalog: DataFrame) -> DataFrame:
    """The night's item vocabulary: catalog items and items seen in sequences, sorted by id
    (every per-user task lays its arrays out over it; padding and unknown come first)."""
    return (steps.select(S.ITEM).union(catalog.select(S.ITEM)).distinct()
            .orderBy(S.ITEM))


def run(spark, cfg: Config, ds: str) -> dict:
    seqs = spark.read.parquet(str(lake.features(cfg, "sequences", ds)))
    steps = steps_of(seqs).cache()
    catalog = spark.read.parquet(str(lake.features(cfg, "items", ds)))
    write_atomically(vocabulary(steps, catalog).coalesce(1), lake.context(cfg, ds, "vocab"),
                     spark)
    counts, meta = {}, {}
    for name, at in lake.points(cfg, ds).items():
        meta[name] = {"at": at.isoformat(),
                      "users": before(steps, at).select(S.USER).distinct().count()}
        stats = item_stats(steps, at=at, popularity_days=cfg.features.popularity_days,
                           weights=cfg.events.weights)
        write_atomically(stats.coalesce(1), lake.context(cfg, ds, name, "items"), spark)
        neighbours = covisitation(steps, at=at)
        write_atomically(neighbours.coalesce(1), lake.context(cfg, ds, name, "neighbours"),
                         spark)
        counts[name] = spark.read.parquet(str(lake.context(cfg, ds, name, "neighbours"))).count()
        log.info("context ds=%s %s (%s): %d co-visitation pairs", ds, name, at.isoformat(),
                 counts[name])
    write_json(meta, lake.context(cfg, ds, "points.json"))
    steps.unpersist()
    return counts


def main(argv: list[str] | None = None) -> None:
    """spark-submit jobs/context.py --ds YYYY-MM-DD [--config F]"""
    job_main(run, "context", __doc__, argv)


if __name__ == "__main__":
    main()
