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

from pyspark import StorageLevel
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
POINT = "point"


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
    return (covisitation_at(steps, {"at": at}, neighbours=neighbours, shrink=shrink)
            .drop(POINT))


def covisitation_at(steps: DataFrame, points: dict[str, datetime], *,
                    neighbours: int = NEIGHBOURS, shrink: float = SHRINK) -> DataFrame:
    """(point, item_id, neighbour_id, sim): each item's top co-visited items before each
    named point in time, from one self-join for all of them.

    A user adds to the co-occurrence of (i, j) from the later of their first steps on i and
    on j, so each pair is tagged with the first point it counts at (`_b`, an index into the
    points sorted by time) and counted once per point with a conditional sum; an item's own
    count is the same with its first step."""
    names = sorted(points, key=lambda name: points[name])
    first = (before(steps, max(points.values())).groupBy(S.USER, S.ITEM)
             .agg(F.min(S.EVENT_TIME).alias("_t")))
    bucket = F.lit(len(names))
    for k in reversed(range(len(names))):  # the first point the step is before
        bucket = F.when(F.col("_t") < F.lit(points[names[k]]), F.lit(k)).otherwise(bucket)
    pairs = first.select(S.USER, S.ITEM, bucket.alias("_b"))

    def by_point(b: str) -> list:
        return [F.sum((F.col(b) <= k).cast("int")).alias(f"_c{k}") for k in range(len(names))]

    a, z = pairs.alias("a"), pairs.alias("z")
    # each unordered pair once (i < j), counted, then both ways round
    half = (a.join(z, (F.col(f"a.{S.USER}") == F.col(f"z.{S.USER}"))
                   & (F.col(f"a.{S.ITEM}") < F.col(f"z.{S.ITEM}")))
            .select(F.col(f"a.{S.ITEM}").alias(S.ITEM), F.col(f"z.{S.ITEM}").alias(NEIGHBOUR),
                    F.greatest(F.col("a._b"), F.col("z._b")).alias("_b"))
            .groupBy(S.ITEM, NEIGHBOUR).agg(*by_point("_b")))
    counts = [f"_c{k}" for k in range(len(names))]
    co = half.unionByName(half.select(F.col(NEIGHBOUR).alias(S.ITEM),
                                      F.col(S.ITEM).alias(NEIGHBOUR), *counts))
    n = pairs.groupBy(S.ITEM).agg(*by_point("_b"))

    def long(df: DataFrame, keys: list[str], value: str) -> DataFrame:
        """One row per point where the count is positive."""
        stack = F.explode(F.array(*[F.struct(F.lit(name).alias(POINT),
                                             F.col(f"_c{k}").alias(value))
                                    for k, name in enumerate(names)]))
        return (df.select(*keys, stack.alias("_p")).select(*keys, "_p.*")
                .filter(F.col(value) > 0))

    co, n = long(co, [S.ITEM, NEIGHBOUR], "_co"), long(n, [S.ITEM], "_n")
    nj = n.select(F.col(POINT), F.col(S.ITEM).alias(NEIGHBOUR), F.col("_n").alias("_m"))
    sim = (co.join(n, [POINT, S.ITEM]).join(nj, [POINT, NEIGHBOUR])
           .withColumn(SIM, (F.col("_co") / (F.sqrt(F.col("_n") * F.col("_m")) + F.lit(shrink)))
                       .cast("float")))
    best = Window.partitionBy(POINT, S.ITEM).orderBy(F.col(SIM).desc(), F.col(NEIGHBOUR))
    return (sim.withColumn("_r", F.row_number().over(best)).filter(F.col("_r") <= neighbours)
            .select(POINT, S.ITEM, NEIGHBOUR, SIM))


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
    points = lake.points(cfg, ds)
    neighbours = covisitation_at(steps, points).persist(StorageLevel.MEMORY_AND_DISK)
    # computed here on every core, before the writes coalesce each point into one file
    log.info("context ds=%s: %d co-visitation pairs over %d points", ds, neighbours.count(),
             len(points))
    for name, at in points.items():
        meta[name] = {"at": at.isoformat(),
                      "users": before(steps, at).select(S.USER).distinct().count()}
        stats = item_stats(steps, at=at, popularity_days=cfg.features.popularity_days,
                           weights=cfg.events.weights)
        write_atomically(stats.coalesce(1), lake.context(cfg, ds, name, "items"), spark)
        write_atomically(neighbours.filter(F.col(POINT) == name).drop(POINT).coalesce(1),
                         lake.context(cfg, ds, name, "neighbours"), spark)
        counts[name] = spark.read.parquet(str(lake.context(cfg, ds, name, "neighbours"))).count()
        log.info("context ds=%s %s (%s): %d co-visitation pairs", ds, name, at.isoformat(),
                 counts[name])
    write_json(meta, lake.context(cfg, ds, "points.json"))
    neighbours.unpersist()
    steps.unpersist()
    return counts


def main(argv: list[str] | None = None) -> None:
    """spark-submit jobs/context.py --ds YYYY-MM-DD [--config F]"""
    job_main(run, "context", __doc__, argv)


if __name__ == "__main__":
    main()
