"""Feature tables as of the end of `ds`: users, items and users' recent item sequences.

Nothing at or after the cutoff (midnight UTC after `ds`) is used, whatever partitions exist.

Run with spark-submit (the DAG does this through SparkSubmitOperator):

    spark-submit jobs/features.py --ds 2026-11-22
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.storage import write_atomically
from nightshelf import lake
from nightshelf import schema as S
from nightshelf.config import Config, MissingInput
from nightshelf.spark import job_main

log = logging.getLogger("nightshelf.features")

WINDOW_ALL = "all"


def before_cutoff(events: DataFrame, cutoff: datetime) -> DataFrame:
    """Only events strictly before the cutoff."""
    return events.filter(F.col(S.EVENT_TIME) < F.lit(cutoff))


def _within(days: int | str, cutoff: datetime) -> Column:
    if days == WINDOW_ALL:
        return F.lit(True)
    return F.col(S.EVENT_TIME) >= F.lit(cutoff - timedelta(days=int(days)))


def _window_counts(windows: list[int], cutoff: datetime, prefix: str = "n") -> list[Column]:
    cols = []
    for w in [*windows, WINDOW_ALL]:
        suffix = f"{w}d" if w != WINDOW_ALL else WINDOW_ALL
        for t in S.EVENT_TYPES:
            hit = (F.col(S.EVENT_TYPE) == t) & _within(w, cutoff)
            n = F.sum(F.when(hit, 1).otherwise(0)).cast("int")
            cols.append(n.alias(f"{prefix}_{t}_{suffix}"))
    return cols


def user_features(events: DataFrame, catalog: DataFrame, *, cutoff: datetime,
                  windows: list[int]) -> DataFrame:
    """One row per user seen before the cutoff: activity windows, recency, taste, price level."""
    ev = before_cutoff(events, cutoff).join(
        catalog.select(S.ITEM, F.col(S.CATEGORY).alias("_cat"), F.col(S.PRICE).alias("_price")),
        S.ITEM, "left")
    agg = ev.groupBy(S.USER).agg(
        *_window_counts(windows, cutoff),
        F.max(S.EVENT_TIME).alias("last_event_time"),
        F.min(S.EVENT_TIME).alias("first_event_time"),
        F.countDistinct(S.SESSION).cast("int").alias("n_sessions"),
        F.countDistinct(S.ITEM).cast("int").alias("n_items"),
        F.avg("_price").alias("avg_price"),
    )
    cat_w = ev.filter(F.col("_cat").isNotNull()).groupBy(S.USER, "_cat").agg(
        F.sum(S.WEIGHT).alias("_w"))
    top = (cat_w.withColumn("_r", F.row_number().over(
        Window.partitionBy(S.USER).orderBy(F.col("_w").desc(), "_cat")))
        .filter("_r = 1").select(S.USER, F.col("_cat").alias("top_category"),
                                 F.col("_w").alias("top_category_weight")))
    secs = F.lit(cutoff).cast("long") - F.col("last_event_time").cast("long")
    return (agg.join(top, S.USER, "left")
            .withColumn("recency_days", (secs / 86400.0).cast("double")))


def item_features(events: DataFrame, catalog: DataFrame, *, cutoff: datetime,
                  windows: list[int]) -> DataFrame:
    """One row per catalog item: popularity windows, conversion, price, category, brand, age."""
    counts = before_cutoff(events, cutoff).groupBy(S.ITEM).agg(
        *_window_counts(windows, cutoff, prefix="pop"),
        F.countDistinct(S.USER).cast("int").alias("n_users"))
    longest = max(windows)
    views, buys = f"pop_view_{longest}d", f"pop_purchase_{longest}d"
    out = catalog.join(counts, S.ITEM, "left").fillna(0, subset=[c for c in counts.columns
                                                                 if c != S.ITEM])
    return (
        out.withColumn(f"conversion_{longest}d",
                       F.when(F.col(views) > 0, F.col(buys) / F.col(views)).otherwise(0.0))
        .withColumn("age_days", F.when(F.col(S.FIRST_SEEN).isNotNull(),
                                       F.datediff(F.lit(cutoff.date()), F.col(S.FIRST_SEEN)))
                    .cast("int"))
    )


def user_sequences(events: DataFrame, *, cutoff: datetime, length: int,
                   weights: dict[str, float], exclusion_days: int) -> DataFrame:
    """Each user's last `length` items in time order, consecutive repeats of an item merged.

    A run of events on the same item (view, cart, purchase) becomes one step carrying its
    first time and its strongest event type. `recent_purchases` lists the items bought within
    the exclusion window, whatever the sequence length.
    """
    ev = before_cutoff(events, cutoff)
    strength = F.create_map(*[F.lit(x) for kv in weights.items() for x in kv])
    by_user = Window.partitionBy(S.USER).orderBy(S.EVENT_TIME, S.EVENT_ID)
    runs = (ev.withColumn("_new", (F.lag(S.ITEM).over(by_user) != F.col(S.ITEM))
                          | F.lag(S.ITEM).over(by_user).isNull())
            .withColumn("_run", F.sum(F.col("_new").cast("int")).over(by_user))
            .groupBy(S.USER, "_run").agg(
                F.first(S.ITEM).alias(S.ITEM),
                F.min(S.EVENT_TIME).alias(S.EVENT_TIME),
                F.max_by(S.EVENT_TYPE, strength[F.col(S.EVENT_TYPE)]).alias(S.EVENT_TYPE)))
    steps = runs.groupBy(S.USER).agg(F.sort_array(F.collect_list(
        F.struct(S.EVENT_TIME, S.ITEM, S.EVENT_TYPE))).alias("_steps"))
    start = F.greatest(F.size("_steps") - F.lit(length - 1), F.lit(1))
    steps = steps.withColumn("_steps", F.slice(F.col("_steps"), start, F.lit(length)))
    bought = (ev.filter((F.col(S.EVENT_TYPE) == S.PURCHASE)
                        & (F.col(S.EVENT_TIME) >= F.lit(cutoff - timedelta(days=exclusion_days))))
              .groupBy(S.USER).agg(F.array_sort(F.collect_set(S.ITEM)).alias(S.RECENT_PURCHASES)))
    return (steps.select(
        S.USER,
        F.col(f"_steps.{S.ITEM}").alias(S.SEQ_ITEMS),
        F.col(f"_steps.{S.EVENT_TYPE}").alias(S.SEQ_TYPES),
        F.col(f"_steps.{S.EVENT_TIME}").alias(S.SEQ_TIMES))
        .join(bought, S.USER, "left")
        .withColumn(S.RECENT_PURCHASES,
                    F.coalesce(S.RECENT_PURCHASES, F.array().cast("array<string>"))))


def read_history(spark, cfg: Config, ds: str) -> DataFrame:
    """Clean event partitions from `history_days` before `ds` up to `ds`."""
    base = lake.clean_events(cfg)
    if not lake.clean_events(cfg, ds).is_dir():
        raise MissingInput(f"features for ds={ds}: no clean events in "
                           f"{lake.clean_events(cfg, ds)}; run the clean job for that day")
    first = lake.part((lake.parse_ds(ds) - timedelta(days=cfg.features.history_days)).isoformat())
    paths = sorted(str(p) for p in base.glob("ds=*") if first <= p.name <= lake.part(ds))
    log.info("features for ds=%s: reading %d clean partitions", ds, len(paths))
    return spark.read.option("basePath", str(base)).parquet(*paths).drop(S.DS)


def run(spark, cfg: Config, ds: str) -> dict:
    cut = lake.cutoff(ds)
    events = read_history(spark, cfg, ds).cache()
    catalog = spark.read.parquet(str(lake.clean_catalog(cfg, ds))).cache()
    tables = {
        "users": user_features(events, catalog, cutoff=cut, windows=cfg.features.windows_days),
        "items": item_features(events, catalog, cutoff=cut, windows=cfg.features.windows_days),
        "sequences": user_sequences(events, cutoff=cut, length=cfg.features.sequence_length,
                                    weights=cfg.events.weights,
                                    exclusion_days=cfg.scoring.exclusion_window_days),
    }
    counts = {}
    for name, df in tables.items():
        # the catalog-sized table in one file; the per-user ones written by every task (a
        # coalesce to one file would run their last stage on one core)
        write_atomically(df.coalesce(1) if name == "items" else df,
                         lake.features(cfg, name, ds), spark)
        counts[name] = spark.read.parquet(str(lake.features(cfg, name, ds))).count()
        log.info("features ds=%s: %s has %d rows", ds, name, counts[name])
    events.unpersist()
    catalog.unpersist()
    return counts


def main(argv: list[str] | None = None) -> None:
    """spark-submit jobs/features.py --ds YYYY-MM-DD [--config F]"""
    job_main(run, "features", __doc__, argv)


if __name__ == "__main__":
    main()
