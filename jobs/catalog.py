"""The day's catalog snapshot: typed, one row per item, rejected rows kept with a reason.

A day without a snapshot of its own uses the latest one landed before it.
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from nightshelf import lake
from nightshelf import schema as S
from nightshelf.config import Config, MissingInput
from nightshelf.landing import require_columns

log = logging.getLogger("nightshelf.clean")


def clean_catalog(raw: DataFrame, *, ds: str) -> tuple[DataFrame, DataFrame]:
    """Typed catalog snapshot (one row per item) and its rejected rows."""
    require_columns(raw, S.REQUIRED_CATALOG_COLUMNS, f"catalog for ds={ds}")
    for c in (S.REPURCHASABLE, S.FIRST_SEEN, S.DESCRIPTION):
        if c not in raw.columns:
            raw = raw.withColumn(c, F.lit(None).cast("string"))
    truthy = ["true", "1", "yes", "y", "t"]
    typed = raw.select(
        F.trim(S.ITEM).alias(S.ITEM), F.trim(S.TITLE).alias(S.TITLE),
        F.trim(S.CATEGORY).alias(S.CATEGORY), F.trim(S.BRAND).alias(S.BRAND),
        F.trim(S.PRICE).try_cast("double").alias(S.PRICE),
        F.lower(F.trim(S.AVAILABLE)).isin(truthy).alias(S.AVAILABLE),
        # null when the catalog does not say: the night learns it from the data
        F.when(F.trim(S.REPURCHASABLE).isin("", "null") | F.col(S.REPURCHASABLE).isNull(),
               F.lit(None)).otherwise(F.lower(F.trim(S.REPURCHASABLE)).isin(truthy))
        .alias(S.REPURCHASABLE),
        F.try_to_date(F.col(S.FIRST_SEEN)).alias(S.FIRST_SEEN),
        F.col(S.DESCRIPTION),
        F.to_json(F.struct(*[F.col(f"`{c}`") for c in raw.columns if c != "_source_file"]))
        .alias(S.RAW),
    )
    reason = (F.when(F.col(S.ITEM).isNull() | (F.col(S.ITEM) == ""), "missing_item_id")
              .when(F.col(S.PRICE).isNull() | (F.col(S.PRICE) < 0), "bad_price"))
    typed = typed.withColumn(S.REJECT_REASON, reason)
    one = Window.partitionBy(S.ITEM).orderBy(F.col(S.AVAILABLE).desc(), S.RAW)
    good = (typed.filter(F.col(S.REJECT_REASON).isNull())
            .withColumn("_n", F.row_number().over(one)).filter("_n = 1")
            .drop("_n", S.RAW, S.REJECT_REASON))
    rejects = typed.filter(F.col(S.REJECT_REASON).isNotNull()).select(S.RAW, S.REJECT_REASON)
    return good, rejects


def latest_catalog_folder(cfg: Config, ds: str):
    """The catalog landed for `ds`, else the latest landed before it."""
    base = lake.landing_catalog(cfg)
    wanted = lake.landing_catalog(cfg, ds)
    if wanted.is_dir():
        return wanted
    older = sorted(p for p in base.glob("ds=*") if p.name <= wanted.name) if base.is_dir() else []
    if not older:
        raise MissingInput(
            f"catalog for ds={ds}: nothing landed in {base} on or before that day; land a "
            f"catalog snapshot in {wanted}"
        )
    log.warning("catalog for ds=%s not landed; using the snapshot of %s", ds, older[-1].name)
    return older[-1]
