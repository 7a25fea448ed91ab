"""Item context of a night as of its points in time: popularity, users per item, first
seen, and co-visitation (each item's top neighbours), all from the sequences table.

A night needs them as of each label window's start (the ranker's training rows), the
holdout split (evaluation) and the cutoff (serving). Everything grows with users and
events, so it runs on Spark: item statistics in Spark SQL, co-visitation as a sparse
product per block of items on the workers (`training.covisit`); the per-user work reads
the results as catalog-sized tables.

Co-visitation is the cosine of co-occurrence in users' histories (`training.baselines.
ItemKNN` is the same definition in NumPy, the reference the tests hold this job to):

    sim(i, j) = |users with i and j| / (sqrt(|users with i| * |users with j|) + shrink)

keeping each item's `neighbours` most similar items (ties: lower item id first).

Run with spark-submit (the DAG does this through SparkSubmitOperator):

    spark-submit jobs/context.py --ds 2026-11-22
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta

import numpy as np
import pyarrow.compute as pc
from pyspark import StorageLevel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from jobs.storage import partition_days, write_atomically, write_json
from nightshelf import lake
from nightshelf import schema as S
from nightshelf.config import Config
from nightshelf.spark import job_main
from training import covisit
from training.context import Repurchase
from training.inputs import load_catalog, night_vocab, repurchase_rule, text_path

log = logging.getLogger("nightshelf.context")

NEIGHBOURS, SHRINK, BLOCK = 100, 10.0, 2048
NEIGHBOUR, SIM = covisit.NEIGHBOUR, covisit.SIM
POP_1D, POP_WINDOW, N_USERS, FIRST_SEEN = "pop_1d", "pop_window", "n_users", "first_seen"
BUYERS, REBUYERS, REBUY_DAYS = "buyers", "rebuyers", "rebuy_days"
LEARNED_REPURCHASABLE = "learned_repurchasable"
POINT = covisit.POINT


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
               weights: dict[str, float], rule: Repurchase = Repurchase()) -> DataFrame:
    """Per item seen before `at`: event-weighted interactions in the day and in the
    popularity window before `at`, distinct users, first time seen, and how it is rebought
    (`repurchase_stats`, and whether that makes it repurchasable by `rule`)."""
    ev = before(steps, at)
    w = F.create_map(*[F.lit(x) for kv in weights.items() for x in kv])[F.col(S.EVENT_TYPE)]
    w = F.coalesce(w, F.lit(1.0))

    def within(days: int):
        return F.sum(F.when(F.col(S.EVENT_TIME) >= F.lit(at - timedelta(days=days)), w)
                     .otherwise(0.0)).cast("float")

    stats = ev.groupBy(S.ITEM).agg(within(1).alias(POP_1D),
                                   within(popularity_days).alias(POP_WINDOW),
                                   F.countDistinct(S.USER).cast("long").alias(N_USERS),
                                   F.min(S.EVENT_TIME).alias(FIRST_SEEN))
    stats = (stats.join(repurchase_stats(ev), S.ITEM, "left")
             .fillna(0, subset=[BUYERS, REBUYERS]))
    learned = ((F.col(BUYERS) >= rule.min_buyers)
               & (F.col(REBUYERS) >= F.lit(rule.min_share) * F.greatest(F.col(BUYERS), F.lit(1))))
    return stats.withColumn(LEARNED_REPURCHASABLE, learned)


def repurchase_stats(ev: DataFrame) -> DataFrame:
    """Per item bought in `ev`: its buyers, the buyers who bought it on two or more days
    (UTC), and the mean days between a rebuyer's purchases of it (null if nobody rebought
    it); `training.context.repurchase_stats` is the reference."""
    per_user = (ev.filter(F.col(S.EVENT_TYPE) == S.PURCHASE)
                .withColumn("_d", F.to_date(F.col(S.EVENT_TIME)))
                .groupBy(S.ITEM, S.USER)
                .agg(F.countDistinct("_d").alias("_n"),
                     F.datediff(F.max("_d"), F.min("_d")).alias("_span")))
    again = F.col("_n") >= 2
    return per_user.groupBy(S.ITEM).agg(
        F.count(F.lit(1)).cast("long").alias(BUYERS),
        F.sum(again.cast("long")).cast("long").alias(REBUYERS),
        F.avg(F.when(again, F.col("_span") / (F.col("_n") - 1))).cast("float")
        .alias(REBUY_DAYS))


def covisitation(steps: DataFrame, *, at: datetime, neighbours: int = NEIGHBOURS,
                 shrink: float = SHRINK) -> DataFrame:
    """(item_id, neighbour_id, sim): each item's top co-visited items before `at`."""
    return (covisitation_at(steps, {"at": at}, neighbours=neighbours, shrink=shrink)
            .drop(POINT))


def covisitation_at(steps: DataFrame, points: dict[str, datetime], *,
                    neighbours: int = NEIGHBOURS, shrink: float = SHRINK,
                    block: int = BLOCK) -> DataFrame:
    """(point, item_id, neighbour_id, sim): each item's top co-visited items before each
    named point in time.

    Spark reduces the steps to each user's first touch of each item, tagged with the first
    point it counts at, and gathers them per user (one entry per user and item: the size
    of the history, not users x catalog); that is broadcast, and one task per point and
    block of `block` items computes the block's neighbours as a sparse product
    (`training.covisit`), so no pair of items is shuffled."""
    spark = steps.sparkSession
    names = sorted(points, key=lambda name: points[name])
    first = (before(steps, max(points.values())).groupBy(S.USER, S.ITEM)
             .agg(F.min(S.EVENT_TIME).alias("_t")))
    bucket = F.lit(len(names))
    for k in reversed(range(len(names))):  # the first point the step is before
        bucket = F.when(F.col("_t") < F.lit(points[names[k]]), F.lit(k)).otherwise(bucket)
    first = first.select(S.USER, S.ITEM, bucket.cast("byte").alias("_b")).persist()
    items = (first.select(S.ITEM).distinct()
             .withColumn("_i", (F.row_number().over(Window.orderBy(S.ITEM)) - 1).cast("int")))
    ids = items.orderBy("_i").select(S.ITEM).toArrow().column(0).combine_chunks()
    per_user = (first.join(F.broadcast(items), S.ITEM).groupBy(S.USER)
                .agg(F.collect_list(F.struct("_i", "_b")).alias("_t")).select("_t")
                .toArrow().column(0).combine_chunks())
    first.unpersist()
    flat = pc.list_flatten(per_user)
    indptr = np.zeros(len(per_user) + 1, np.int64)
    np.cumsum(pc.list_value_length(per_user).to_numpy(zero_copy_only=False), out=indptr[1:])
    touches = covisit.Touches(indptr=indptr, items=flat.field("_i").to_numpy(),
                              buckets=flat.field("_b").to_numpy(), ids=ids,
                              points=tuple(names))
    log.info("co-visitation: %d users' first touches of %d items (%d entries), %d points",
             len(per_user), len(ids), len(flat), len(names))
    n_blocks = covisit.blocks(len(ids), block)
    tasks = len(names) * n_blocks
    worker = functools.partial(covisit.neighbours_of_blocks,
                               spark.sparkContext.broadcast(touches), n_blocks, block,
                               neighbours, shrink)
    return (spark.range(tasks, numPartitions=max(tasks, 1))
            .mapInArrow(worker, from_arrow_schema(covisit.SCHEMA)))


def vocabulary(steps: DataFrame, catalog: DataFrame, new_since=None) -> DataFrame:
    """The night's item vocabulary, sorted by id (every per-user task lays its arrays out over
    it; padding and unknown come first): the items seen in sequences, and the catalog's new
    items (first seen on or after `new_since`) that nobody has touched yet. A catalog item
    that has been there for a while and was never touched is left out: SASRec's softmax
    would span it with an embedding nothing trains, and no list could learn to rank it."""
    fresh = catalog.select(S.ITEM).limit(0)
    if new_since is not None and S.FIRST_SEEN in catalog.columns:
        fresh = catalog.filter(F.col(S.FIRST_SEEN) >= F.lit(new_since)).select(S.ITEM)
    return steps.select(S.ITEM).union(fresh).distinct().orderBy(S.ITEM)


def listed(spark, cfg: Config, ds: str, at: datetime, days: list[str]) -> tuple[DataFrame, str]:
    """(item_id of the items on sale as of `at`, which catalog said so): the latest cleaned
    catalog snapshot of a day on or before `at`'s (a day's snapshot lists what the shop
    sells from that day on; the night's own for the split and the cutoff), its items marked
    available. Without such a snapshot, the night's catalog less the items it says were
    first seen after that day. A label window's candidates are then what could have been
    recommended at its start, not items launched later that nobody could have touched in it."""
    day = min(at.date(), lake.parse_ds(ds)).isoformat()
    earlier = [d for d in days if d <= day]
    if earlier:
        cat = spark.read.parquet(str(lake.clean_catalog(cfg, earlier[-1])))
        source = f"clean catalog ds={earlier[-1]}"
    else:
        cat = spark.read.parquet(str(lake.features(cfg, "items", ds)))
        source = f"the night's catalog (no snapshot on or before {day})"
        if S.FIRST_SEEN in cat.columns:
            cat = cat.filter(F.col(S.FIRST_SEEN).isNull()
                             | (F.to_date(F.col(S.FIRST_SEEN)) <= F.lit(day).cast("date")))
            source += ", less items first seen later"
    return cat.filter(F.col(S.AVAILABLE)).select(S.ITEM).distinct(), source


def write_text(cfg: Config, ds: str) -> None:
    """The vocabulary's item text: each title's vector (encoded once, cached by content
    hash) and its nearest items by text, on the driver: catalog-sized, never per user."""
    from training.text import item_text_of

    vocab = night_vocab(cfg, ds)
    catalog = load_catalog(cfg, ds)
    item_text_of(cfg, [catalog.title.get(str(v)) or "" for v in vocab]).save(text_path(cfg, ds))


def run(spark, cfg: Config, ds: str) -> dict:
    seqs = spark.read.parquet(str(lake.features(cfg, "sequences", ds)))
    steps = steps_of(seqs).cache()
    catalog = spark.read.parquet(str(lake.features(cfg, "items", ds)))
    new_since = lake.cutoff(ds).date() - timedelta(days=cfg.features.new_item_days)
    vocab = vocabulary(steps, catalog, new_since)
    write_atomically(vocab.coalesce(1), lake.context(cfg, ds, "vocab"), spark)
    log.info("context ds=%s: vocabulary of %d items (%d in the catalog)", ds,
             spark.read.parquet(str(lake.context(cfg, ds, "vocab"))).count(), catalog.count())
    if cfg.text.enabled:
        write_text(cfg, ds)
    counts, meta = {}, {}
    points = lake.points(cfg, ds)
    days = partition_days(spark, lake.clean_catalog(cfg))
    neighbours = covisitation_at(steps, points).persist(StorageLevel.MEMORY_AND_DISK)
    # computed here on every core, before the writes coalesce each point into one file
    log.info("context ds=%s: %d co-visitation pairs over %d points", ds, neighbours.count(),
             len(points))
    for name, at in points.items():
        table = functools.partial(lake.context, cfg, ds, name)
        on_sale, source = listed(spark, cfg, ds, at, days)
        write_atomically(on_sale.coalesce(1), table(lake.CONTEXT_LISTED), spark)
        meta[name] = {"at": at.isoformat(), "catalog": source,
                      "users": before(steps, at).select(S.USER).distinct().count()}
        stats = item_stats(steps, at=at, popularity_days=cfg.features.popularity_days,
                           weights=cfg.events.weights, rule=repurchase_rule(cfg))
        write_atomically(stats.coalesce(1), table(lake.CONTEXT_ITEMS), spark)
        write_atomically(neighbours.filter(F.col(POINT) == name).drop(POINT).coalesce(1),
                         table(lake.CONTEXT_NEIGHBOURS), spark)
        counts[name] = spark.read.parquet(str(table(lake.CONTEXT_NEIGHBOURS))).count()
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
