"""Clean one day of raw events: normalise, quarantine bad rows, de-duplicate, protect PII.

Every raw row ends in exactly one place: the clean table, the duplicate count, or the
quarantine (with a reason). `rows_in == clean + duplicates + quarantined` is checked before
anything is written, and the counts are recorded next to the partition.

Run with spark-submit (the DAG does this through SparkSubmitOperator):

    spark-submit jobs/clean.py --ds 2026-11-22
    spark-submit jobs/clean.py --from 2026-11-01 --to 2026-11-21   # several days, one session
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from datetime import timedelta

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.catalog import clean_catalog, latest_catalog_folder
from jobs.storage import write_atomically
from nightshelf import lake
from nightshelf import schema as S
from nightshelf import secrets
from nightshelf.config import Config, EventsConfig, load_config
from nightshelf.landing import InputError, read_landed, require_columns, with_default_event_type
from nightshelf.logs import setup_logging
from nightshelf.records import CleanCounts
from nightshelf.spark import get_spark

log = logging.getLogger("nightshelf.clean")


def hmac_sha256(col: Column, key: bytes) -> Column:
    """HMAC-SHA256 (RFC 2104) of a string column as hex, in Spark SQL (no Python UDF)."""
    block = 64
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    ipad = bytearray(b ^ 0x36 for b in key)
    opad = bytearray(b ^ 0x5C for b in key)
    inner = F.unhex(F.sha2(F.concat(F.lit(ipad), F.encode(col, "UTF-8")), 256))
    return F.sha2(F.concat(F.lit(opad), inner), 256)


def protect_pii(df: DataFrame, *, pii: dict[str, str], key: bytes | None) -> DataFrame:
    """Drop or keyed-hash the PII columns named in config (`<col>_hash` replaces `<col>`)."""
    for col, action in pii.items():
        if col not in df.columns:
            continue
        if action == "drop":
            df = df.drop(col)
        elif action == "hash":
            if not key:
                raise ValueError(
                    f"events.pii: column {col} is to be hashed but no key is set; export a "
                    f"secret key in $NIGHTSHELF_PII_KEY (never commit it)"
                )
            df = df.withColumn(f"{col}_hash", hmac_sha256(F.col(col), key)).drop(col)
        else:
            raise ValueError(f"events.pii.{col}: unknown action {action!r} (use drop or hash)")
    return df


def parse_event_time(col: Column) -> Column:
    """ISO-8601 with a zone, epoch seconds or epoch milliseconds -> UTC timestamp, else null."""
    s = F.trim(col)
    return (
        F.when(s.rlike(r"^\d{12,13}$"), F.timestamp_millis(s.try_cast("long")))
        .when(s.rlike(r"^\d{9,10}(\.\d+)?$"), F.timestamp_seconds(s.try_cast("double")))
        .when(s.rlike(r"^\d{4}-\d{2}-\d{2}[T ].*(Z|[+-]\d{2}:?\d{2})$"), F.try_to_timestamp(s))
    )


def normalise_events(df: DataFrame, *, ds: str, events: EventsConfig) -> DataFrame:
    """Parse and map the raw columns; rows that cannot be used get a `reject_reason`."""
    df = with_default_event_type(df, events)
    require_columns(df, S.REQUIRED_EVENT_COLUMNS, f"raw events for ds={ds}")
    for c in (*S.OPTIONAL_EVENT_COLUMNS, S.CORRUPT):
        if c not in df.columns:
            df = df.withColumn(c, F.lit(None).cast("string"))
    type_map = F.create_map(*[F.lit(x) for kv in events.type_map.items() for x in kv])
    weights = F.create_map(*[F.lit(x) for kv in events.weights.items() for x in kv])
    start = lake.cutoff(ds) - timedelta(days=1)
    earliest = start - timedelta(hours=events.late_tolerance_hours)
    latest = lake.cutoff(ds) + timedelta(minutes=events.future_tolerance_minutes)

    out = (
        df.withColumn("_raw_type", F.lower(F.trim(S.EVENT_TYPE)))
        .withColumn(S.USER, F.trim(S.USER))
        .withColumn(S.ITEM, F.trim(S.ITEM))
        .withColumn("_raw_time", F.col(S.EVENT_TIME))
        .withColumn("_raw_price", F.trim(S.PRICE))
        .withColumn("_raw_qty", F.trim(S.QUANTITY))
        .withColumn(S.EVENT_TYPE, type_map[F.col("_raw_type")])
        .withColumn(S.EVENT_TIME, parse_event_time(F.col(S.EVENT_TIME)))
        .withColumn(S.PRICE, F.trim(S.PRICE).try_cast("double"))
        .withColumn(S.QUANTITY, F.trim(S.QUANTITY).try_cast("int"))
        .withColumn(S.WEIGHT, weights[F.col(S.EVENT_TYPE)].cast("double"))
    )
    blank = lambda c: F.col(c).isNull() | (F.col(c) == "")  # noqa: E731
    raw_type, raw_price, raw_qty = F.col("_raw_type"), F.col("_raw_price"), F.col("_raw_qty")
    reason = (
        F.when(F.col(S.CORRUPT).isNotNull(), "malformed_row")
        .when(blank(S.USER), "missing_user_id")
        .when(blank(S.ITEM), "missing_item_id")
        .when(raw_type.isNull() | (raw_type == ""), "missing_event_type")
        .when(F.col(S.EVENT_TYPE).isNull(), "unknown_event_type")
        .when(F.col("_raw_time").isNull() | (F.trim("_raw_time") == ""), "missing_event_time")
        .when(F.col(S.EVENT_TIME).isNull(), "bad_event_time")
        .when(F.col(S.EVENT_TIME) < F.lit(earliest), "event_time_before_partition")
        .when(F.col(S.EVENT_TIME) >= F.lit(latest), "event_time_after_partition")
        .when(raw_price.isNotNull() & (raw_price != "") & F.col(S.PRICE).isNull(), "bad_price")
        .when((F.col(S.PRICE) < 0) | (F.col(S.PRICE) > events.max_price), "price_out_of_range")
        .when(raw_qty.isNotNull() & (raw_qty != "") & F.col(S.QUANTITY).isNull(), "bad_quantity")
        .when((F.col(S.QUANTITY) <= 0) | (F.col(S.QUANTITY) > events.max_quantity),
              "quantity_out_of_range")
    )
    derived_id = F.substring(
        F.sha2(F.concat_ws("|", S.USER, S.ITEM, S.EVENT_TYPE, "_raw_time", S.SESSION), 256), 1, 32
    )
    return (
        out.withColumn(S.REJECT_REASON, reason)
        .withColumn(S.EVENT_ID, F.coalesce(F.nullif(F.trim(S.EVENT_ID), F.lit("")), derived_id))
        .drop("_raw_type", "_raw_time", "_raw_price", "_raw_qty", S.CORRUPT)
    )


def mark_duplicates(df: DataFrame, *, double_fire_seconds: int) -> DataFrame:
    """Add `dup_kind`: null for the event kept, `exact` or `double_fire` for the others.

    Exact: the same event_id again (kept: the earliest). Double-fire: the same user, item and
    event type again within `double_fire_seconds` of the previous one kept.
    """
    by_id = Window.partitionBy(S.EVENT_ID).orderBy(S.EVENT_TIME, S.RAW)
    df = df.withColumn("_n", F.row_number().over(by_id))
    by_key = Window.partitionBy(S.USER, S.ITEM, S.EVENT_TYPE).orderBy(S.EVENT_TIME, S.EVENT_ID)
    first = df.filter(F.col("_n") == 1)
    gap = F.unix_micros(F.col(S.EVENT_TIME)) - F.unix_micros(F.lag(S.EVENT_TIME).over(by_key))
    first = first.withColumn(
        "dup_kind",
        F.when(gap < double_fire_seconds * 1_000_000, F.lit("double_fire")),
    )
    exact = df.filter(F.col("_n") > 1).withColumn("dup_kind", F.lit("exact"))
    return first.unionByName(exact).drop("_n")


def flag_unknown_items_and_bots(norm: DataFrame, *, known_items: DataFrame | None,
                                max_events_per_user_day: int) -> DataFrame:
    """Quarantine events of items missing from the catalog (`unknown_item`), then every event
    of a user with more than `max_events_per_user_day` usable events (`bot_user`)."""
    reason = F.col(S.REJECT_REASON)
    if known_items is not None:
        known = known_items.select(S.ITEM).distinct().withColumn("_known", F.lit(True))
        norm = norm.join(F.broadcast(known), on=S.ITEM, how="left")
        reason = F.coalesce(reason, F.when(F.col("_known").isNull(), F.lit("unknown_item")))
        norm = norm.withColumn(S.REJECT_REASON, reason).drop("_known")
    per_user = F.sum(F.when(F.col(S.REJECT_REASON).isNull(), 1).otherwise(0)).over(
        Window.partitionBy(S.USER))
    return (norm.withColumn("_user_events", per_user)
            .withColumn(S.REJECT_REASON, F.coalesce(
                F.col(S.REJECT_REASON),
                F.when(F.col("_user_events") > max_events_per_user_day, F.lit("bot_user"))))
            .drop("_user_events"))


def clean_events(raw: DataFrame, *, ds: str, events: EventsConfig, pii_key: bytes | None,
                 known_items: DataFrame | None = None) -> tuple[DataFrame, DataFrame, DataFrame]:
    """Raw rows -> (clean, quarantine, duplicates), every row in exactly one of the three.

    With `known_items` (the day's catalog), events of other items are quarantined.
    """
    raw = protect_pii(raw, pii=events.pii, key=pii_key)
    cols = [c for c in raw.columns if c != "_source_file"]
    raw = raw.withColumn(S.RAW, F.to_json(F.struct(*[F.col(f"`{c}`") for c in cols])))
    norm = flag_unknown_items_and_bots(
        normalise_events(raw, ds=ds, events=events), known_items=known_items,
        max_events_per_user_day=events.max_events_per_user_day)
    quarantine = norm.filter(F.col(S.REJECT_REASON).isNotNull()).select(
        S.RAW, S.REJECT_REASON, "_source_file")
    good = mark_duplicates(norm.filter(F.col(S.REJECT_REASON).isNull()),
                           double_fire_seconds=events.double_fire_seconds)
    extra = [c for c in good.columns if c.endswith("_hash")]
    clean = good.filter(F.col("dup_kind").isNull()).select(*S.CLEAN_EVENT_COLUMNS, *extra)
    dups = good.filter(F.col("dup_kind").isNotNull()).select(S.EVENT_ID, "dup_kind")
    return clean, quarantine, dups


def _counts(rows_in: int, clean: DataFrame, quarantine: DataFrame, dups: DataFrame,
            ds: str, **catalog) -> CleanCounts:
    by_reason = {r[S.REJECT_REASON]: r["count"]
                 for r in quarantine.groupBy(S.REJECT_REASON).count().collect()}
    by_dup = {r["dup_kind"]: r["count"] for r in dups.groupBy("dup_kind").count().collect()}
    counts = CleanCounts(ds=ds, rows_in=rows_in, clean=clean.count(),
                         duplicates=sum(by_dup.values()), duplicates_by_kind=by_dup,
                         quarantined=sum(by_reason.values()), quarantined_by_reason=by_reason,
                         **catalog)
    total = counts.clean + counts.duplicates + counts.quarantined
    if total != rows_in:
        raise RuntimeError(f"clean ds={ds}: {rows_in} rows in but {total} accounted for {counts}")
    return counts


def run(spark, cfg: Config, ds: str) -> CleanCounts:
    """Clean the events and catalog landed for `ds`; returns the counts."""

    key = secrets.pii_key(cfg)
    cat_raw = read_landed(spark, latest_catalog_folder(cfg, ds), f"catalog for ds={ds}")
    catalog, cat_rejects = clean_catalog(cat_raw, ds=ds)
    catalog = catalog.cache()
    n_items = catalog.count()
    if n_items == 0:
        raise InputError(f"catalog for ds={ds}: no usable item in the landed snapshot; every "
                         f"event would be unknown_item (land a catalog with items)")

    what = f"raw events for ds={ds}"
    raw = read_landed(spark, lake.landing_events(cfg, ds), what, cfg.events.column_map).cache()
    rows_in = raw.count()
    if rows_in == 0:
        files = sorted(r[0] for r in raw.select("_source_file").distinct().collect()) or sorted(
            p.name for p in lake.landing_events(cfg, ds).iterdir())
        raise InputError(f"{what}: the landed file(s) {', '.join(files)} hold no rows; a shop "
                         f"with traffic never has an empty day, so the export is incomplete: "
                         f"re-export the day, then rerun the night")
    extra = sorted(set(raw.columns) - set(S.REQUIRED_EVENT_COLUMNS)
                   - set(S.OPTIONAL_EVENT_COLUMNS) - set(cfg.events.pii)
                   - {"_source_file", S.CORRUPT})
    if extra:
        log.warning("%s: column(s) %s are not in the contract; they are kept only in the "
                    "quarantine's raw text (map them with events.column_map if they should "
                    "be used)", what, ", ".join(extra))
    clean, quarantine, dups = clean_events(raw, ds=ds, events=cfg.events, pii_key=key,
                                           known_items=catalog)
    clean, quarantine, dups = clean.cache(), quarantine.cache(), dups.cache()
    counts = _counts(rows_in, clean, quarantine, dups, ds, extra_columns=extra,
                     catalog_items=n_items, catalog_rejected=cat_rejects.count())
    write_atomically(clean, lake.clean_events(cfg, ds), spark)
    write_atomically(quarantine, lake.quarantine(cfg, ds), spark)
    write_atomically(catalog, lake.clean_catalog(cfg, ds), spark)
    write_atomically(cat_rejects, lake.lake(cfg, "quarantine", "catalog", lake.part(ds)), spark)
    counts.write(cfg)
    log.info("clean ds=%s: %s", ds, counts)
    for df in (raw, clean, quarantine, dups, catalog):
        df.unpersist()
    return counts


def days_between(first: str, last: str) -> list[str]:
    a, b = lake.parse_ds(first), lake.parse_ds(last)
    return [(a + timedelta(days=i)).isoformat() for i in range((b - a).days + 1)]


def main(argv: list[str] | None = None) -> None:
    """spark-submit jobs/clean.py --ds YYYY-MM-DD [--ds ...] | --from A --to B [--config F]"""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ds", action="append", default=[])
    p.add_argument("--from", dest="first")
    p.add_argument("--to", dest="last")
    p.add_argument("--config")
    args = p.parse_args(argv)
    setup_logging()
    days = list(args.ds)
    if args.first or args.last:
        if not (args.first and args.last):
            p.error("--from and --to go together")
        days += days_between(args.first, args.last)
    if not days:
        p.error("give --ds or --from/--to")
    cfg = load_config(args.config)
    spark = get_spark(cfg, "clean")
    try:
        for ds in days:
            run(spark, cfg, ds)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
