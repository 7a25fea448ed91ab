"""The served lists scored the next day: the lists published for night D-1 against what users
did on day D (the clean events of `ds`), the one quality figure measured on what was really
served. Run inside the `evaluate` job's session (no Spark start-up of its own), so a night
records it from the second night of a backfill on; the first night, or one whose previous
night published nothing, records that there was nothing to score.

Figures, over the users who had a list and did something on day D ("active"):
- `hr@N`: share of active users with at least one item of their list among the items they
  touched that day (any event type);
- `ndcg@N`: binary-relevance NDCG of their list against those items;
- `purchase_share`: of the day's distinct (user, item) purchases, the share whose item was
  on that user's list (users without a list count as not recommended);
each overall, per model version that served the lists, and per reason (the kind of the
published `reason`: the user's own item, similar to one, more from its category, popular).
"""

from __future__ import annotations

import logging
import math
from datetime import timedelta

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from nightshelf import lake
from nightshelf import schema as S
from nightshelf.config import Config
from nightshelf.records import FeedbackRecord

log = logging.getLogger("nightshelf.feedback")

# the published reason's wording (training/score.py) -> its kind
REASON_KINDS = (("you %", "own_history"), ("similar to %", "similar"),
                ("more from %", "category"), ("popular in %", "popular"))


def reason_kind(reason: Column) -> Column:
    out = F.lit("other")
    for pattern, kind in reversed(REASON_KINDS):
        out = F.when(reason.like(pattern), F.lit(kind)).otherwise(out)
    return out


def _idcg(relevant: Column, n: int) -> Column:
    """The ideal DCG of `relevant` items in a list of `n`: a lookup of the prefix sums."""
    prefix = [0.0]
    for i in range(n):
        prefix.append(prefix[-1] + 1.0 / math.log2(i + 2))
    index = (F.least(relevant, F.lit(n)) + 1).cast("int")
    return F.element_at(F.array(*[F.lit(x) for x in prefix]), index)


def _summary(per_user: DataFrame, keys: list[str]) -> list[dict]:
    """Users, HR and NDCG per group of `keys` (no keys: one row over every user)."""
    rows = (per_user.groupBy(*keys)
            .agg(F.count("*").alias("users"), F.avg("hit").alias("hr"),
                 F.avg(F.col("dcg") / F.col("idcg")).alias("ndcg")))
    return [r.asDict() for r in (rows.orderBy(*keys) if keys else rows).collect()]


def served_feedback(lists: DataFrame, events: DataFrame, n: int) -> dict:
    """The figures above, from the published rows (`user_id, rank, item_id, reason,
    model_version`) and the day's clean events; everything small is collected."""
    lists = lists.filter(F.col(S.RANK) <= n).select(S.USER, S.ITEM, S.RANK, S.REASON,
                                                    S.MODEL_VERSION)
    touched = events.select(S.USER, S.ITEM).distinct()
    listed = lists.select(S.USER).distinct()
    active = touched.select(S.USER).distinct().join(listed, S.USER)
    relevant = touched.join(active, S.USER).groupBy(S.USER).agg(F.count("*").alias("relevant"))
    shown = (lists.join(active, S.USER)
             .join(touched.withColumn("hit", F.lit(1)), [S.USER, S.ITEM], "left")
             .withColumn("hit", F.coalesce(F.col("hit"), F.lit(0)))
             .withColumn("kind", reason_kind(F.col(S.REASON))).cache())
    per_user = (shown.groupBy(S.USER, S.MODEL_VERSION)
                .agg(F.max("hit").alias("hit"),
                     F.sum(F.col("hit") / F.log2(F.col(S.RANK) + 1)).alias("dcg"))
                .join(relevant, S.USER)
                .withColumn("idcg", _idcg(F.col("relevant"), n))).cache()
    bought = (events.filter(F.col(S.EVENT_TYPE) == S.PURCHASE).select(S.USER, S.ITEM)
              .distinct())
    recommended = bought.join(lists.select(S.USER, S.ITEM), [S.USER, S.ITEM], "left_semi")
    by_reason = (shown.groupBy("kind").agg(F.count("*").alias("shown"),
                                           F.sum("hit").alias("hits"))
                 .orderBy("kind").collect())
    out = {
        "users_listed": listed.count(),
        "users_active": active.count(),
        "purchases": bought.count(),
        "purchases_recommended": recommended.count(),
        "overall": _summary(per_user, [])[0],
        "by_model_version": {r[S.MODEL_VERSION]: {k: r[k] for k in ("users", "hr", "ndcg")}
                             for r in _summary(per_user, [S.MODEL_VERSION])},
        "by_reason": {r["kind"]: {"shown": r["shown"], "hits": r["hits"],
                                  "hit_rate": r["hits"] / r["shown"] if r["shown"] else None}
                      for r in by_reason},
    }
    shown.unpersist()
    per_user.unpersist()
    out["purchase_share"] = (out["purchases_recommended"] / out["purchases"]
                             if out["purchases"] else None)
    return out


def run(spark: SparkSession, cfg: Config, ds: str) -> FeedbackRecord:
    """Score the lists of the night before `ds` against `ds`'s clean events; write the
    night's feedback record (with `served` None when there was nothing to score)."""
    served_ds = (lake.parse_ds(ds) - timedelta(days=1)).isoformat()
    manifest = lake.read_json(lake.manifest(cfg, served_ds))
    events_dir = lake.clean_events(cfg, ds)
    top_n = figures = None
    if manifest is None:
        why = f"no lists were published for {served_ds}"
    elif not events_dir.exists():
        why = f"no clean events for {ds}"
    else:
        top_n = int(manifest["top_n"])
        served = [str(p) for p in lake.data_files(lake.recommendations(cfg, served_ds))]
        figures = served_feedback(spark.read.parquet(*served),
                                  spark.read.parquet(str(events_dir)), top_n)
        why = ""
    record = FeedbackRecord(ds=ds, served_ds=served_ds, top_n=top_n, served=figures,
                            skipped=why or None)
    record.write(cfg)
    if figures:
        o = figures["overall"]
        log.info("feedback ds=%s: the lists of %s on %d active users: hr@%d=%s ndcg@%d=%s, "
                 "%s of %d purchases recommended", ds, served_ds, figures["users_active"],
                 top_n, _fmt(o["hr"]), top_n, _fmt(o["ndcg"]),
                 _fmt(figures["purchase_share"]), figures["purchases"])
    else:
        log.info("feedback ds=%s: nothing to score (%s)", ds, why)
    return record


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def mlflow_metrics(record: FeedbackRecord) -> dict[str, float]:
    """The record as the night run's metrics (`served.*`), so the UI charts them night over
    night."""
    if not record.served:
        return {}
    f, n = record.served, record.top_n
    out = {f"served.hr_at_{n}": f["overall"]["hr"], f"served.ndcg_at_{n}": f["overall"]["ndcg"],
           "served.purchase_share": f["purchase_share"],
           "served.users_active": f["users_active"], "served.purchases": f["purchases"]}
    for kind, r in f["by_reason"].items():
        out[f"served.{kind}.hit_rate"] = r["hit_rate"]
    return {k: float(v) for k, v in out.items() if v is not None}
