"""The frames each stage is validated on: the stage's output plus derived invariant columns."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from nightshelf import lake
from nightshelf import schema as S
from nightshelf.config import Config
from nightshelf.landing import read_landed, with_default_event_type
from nightshelf.records import CleanCounts


def raw_frame(spark: SparkSession, cfg: Config, ds: str) -> DataFrame:
    raw = with_default_event_type(
        read_landed(spark, lake.landing_events(cfg, ds), f"raw events for ds={ds}",
                    cfg.events.column_map), cfg.events)
    norm = (F.lower(F.trim(S.EVENT_TYPE)) if S.EVENT_TYPE in raw.columns
            else F.lit(None).cast("string"))
    return raw.withColumn("_event_type_norm", norm)


def clean_frame(spark: SparkSession, cfg: Config, ds: str) -> DataFrame:
    df = spark.read.parquet(str(lake.clean_events(cfg, ds)))
    return df.withColumn("_epoch_s", F.col(S.EVENT_TIME).cast("double"))


def counts_frame(spark: SparkSession, cfg: Config, ds: str, clean: DataFrame) -> DataFrame:
    counts = CleanCounts.read(cfg, ds)
    row = {
        "rows_in": counts.rows_in,
        "accounted_for": counts.clean + counts.duplicates + counts.quarantined,
        "quarantine_rate": counts.quarantine_rate,
        "duplicate_rate": counts.duplicate_rate,
        "no_pii_columns": not any(c in clean.columns for c in cfg.events.pii),
    }
    return spark.createDataFrame([row])


def sequences_frame(spark: SparkSession, cfg: Config, ds: str) -> DataFrame:
    df = spark.read.parquet(str(lake.features(cfg, "sequences", ds)))
    times = F.col(S.SEQ_TIMES)
    return (df.withColumn("_length", F.size(S.SEQ_ITEMS))
            .withColumn("_times_sorted", F.array_sort(times) == times)
            .withColumn("_before_cutoff", F.array_max(times) < F.lit(lake.cutoff(ds)))
            .withColumn("_aligned", (F.size(S.SEQ_TYPES) == F.size(S.SEQ_ITEMS))
                        & (F.size(S.SEQ_TIMES) == F.size(S.SEQ_ITEMS))))


def recommendation_frames(spark: SparkSession, cfg: Config, ds: str,
                          recs_path: str) -> tuple[DataFrame, DataFrame]:
    """(one row per recommendation, one row per eligible user) with invariant columns."""
    recs = spark.read.parquet(recs_path)
    # repurchasable: the catalog's flag where it has one, else what the night learned
    learned = spark.read.parquet(str(lake.context(cfg, ds, "cutoff", "items"))).select(
        S.ITEM, F.col("learned_repurchasable").alias("_learned"))
    catalog = (spark.read.parquet(str(lake.clean_catalog(cfg, ds))).join(learned, S.ITEM, "left")
               .select(S.ITEM, F.col(S.AVAILABLE).alias("_avail"),
                       F.coalesce(F.col(S.REPURCHASABLE), F.col("_learned")).alias("_rep")))
    seqs = spark.read.parquet(str(lake.features(cfg, "sequences", ds)))
    bought = seqs.select(S.USER, F.explode(S.RECENT_PURCHASES).alias(S.ITEM)).withColumn(
        "_bought", F.lit(True))
    per_user = Window.partitionBy(S.USER)
    by_rank = Window.partitionBy(S.USER).orderBy(S.RANK)
    checked = (
        recs.join(catalog, S.ITEM, "left").join(bought, [S.USER, S.ITEM], "left")
        .withColumn("_ranks_contiguous",
                    (F.max(S.RANK).over(per_user) == F.count(F.lit(1)).over(per_user))
                    & (F.min(S.RANK).over(per_user) == 1))
        .withColumn("_score_sorted", F.coalesce(
            F.lag(S.SCORE).over(by_rank) >= F.col(S.SCORE), F.lit(True)))
        .withColumn("_item_in_catalog", F.col("_avail").isNotNull())
        .withColumn("_item_available", F.coalesce(F.col("_avail"), F.lit(False)))
        .withColumn("_not_recently_bought",
                    F.col("_bought").isNull() | F.coalesce(F.col("_rep"), F.lit(False)))
    )
    users = (seqs.select(S.USER).join(
        recs.select(S.USER).distinct().withColumn("_has", F.lit(True)), S.USER, "left")
        .withColumn("_has_list", F.coalesce(F.col("_has"), F.lit(False))))
    return checked, users


def coverage_frame(spark: SparkSession, cfg: Config, ds: str, recs_path: str,
                   top_n: int) -> DataFrame:
    """One row: how many distinct items the published lists hold, and their share of what
    lists of `top_n` items for these users could hold at most (min(available items, users x
    N)): a model whose lists collapse onto a few items shows here, as in the gate."""
    recs = spark.read.parquet(recs_path)
    available = (spark.read.parquet(str(lake.clean_catalog(cfg, ds)))
                 .filter(F.col(S.AVAILABLE)).select(S.ITEM).distinct().count())
    row = recs.agg(F.countDistinct(S.USER).alias("users"),
                   F.countDistinct(S.ITEM).alias("distinct_items")).first()
    possible = max(1, min(available, row.users * top_n))
    return spark.createDataFrame([{"users": row.users, "distinct_items": row.distinct_items,
                                   "possible_coverage": row.distinct_items / possible}])
