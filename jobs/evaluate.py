"""Every model of the night on the same holdout: the challenger ranker, the champion (when
another version holds the alias), SASRec alone, popularity, item-kNN, buy-again and ALS.

The holdout is what users did after the split (the last `model.holdout_days`); every model
sees only what happened before it. One `mapInArrow` over the users
(`training.partitions.evaluate`) builds each holdout user's top-K list per model under the
published masks and hands back metric sums per partition; ALS is fitted with Spark MLlib and
its lists (`recommendForUserSubset`) are joined onto the users first. The driver merges the
sums into reports, writes `evaluation.json` and logs metrics, plots and the comparison table
to the night's MLflow run, and each model's metrics to a run of its own nested under it.

In the same session it scores the lists published the night before against today's events
(`jobs/feedback.py`: `feedback.json`, the run's `served.*` metrics).

Run with spark-submit (the DAG does this through SparkSubmitOperator):

    spark-submit jobs/evaluate.py --ds 2026-11-22
"""

from __future__ import annotations

import logging
import time

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from jobs import feedback
from jobs.context import before, steps_of
from jobs.users import map_users, sequences
from nightshelf import lake
from nightshelf import schema as S
from nightshelf.config import Config
from nightshelf.records import EvaluationRecord, RankerRecord, SasrecRecord
from nightshelf.spark import job_main
from nightshelf.tracking import CHAMPION, log_model_runs, metric_key, setup_mlflow
from training import inputs, partitions, plots
from training.evaluate import Evaluation, comparison_table

log = logging.getLogger("nightshelf.evaluate")


def als_lists(steps: DataFrame, *, at, weights: dict[str, float], k: int, seed: int,
              rank: int = 32, iterations: int = 10, reg: float = 0.05,
              alpha: float = 10.0) -> DataFrame:
    """(user_id, als_items): implicit ALS (Hu et al. 2008) fitted on the steps before `at`
    (event weights summed per user and item as the confidence), and the `k` best items of
    every user who did something from `at` on, best first."""
    from pyspark.ml.recommendation import ALS

    w = F.coalesce(F.create_map(*[F.lit(x) for kv in weights.items() for x in kv])[
        F.col(S.EVENT_TYPE)], F.lit(1.0))
    ratings = before(steps, at).groupBy(S.USER, S.ITEM).agg(F.sum(w).cast("float")
                                                            .alias("rating"))
    users = ratings.select(S.USER).distinct().withColumn(
        "uid", (F.row_number().over(Window.orderBy(S.USER)) - 1).cast("int"))
    items = ratings.select(S.ITEM).distinct().withColumn(
        "iid", (F.row_number().over(Window.orderBy(S.ITEM)) - 1).cast("int"))
    data = ratings.join(users, S.USER).join(items, S.ITEM).select("uid", "iid", "rating")
    model = ALS(rank=rank, maxIter=iterations, regParam=reg, implicitPrefs=True, alpha=alpha,
                userCol="uid", itemCol="iid", ratingCol="rating", seed=seed,
                coldStartStrategy="drop").fit(data)
    back = steps.filter(F.col(S.EVENT_TIME) >= F.lit(at)).select(S.USER).distinct()
    queries = users.join(back, S.USER).select("uid")
    recs = (model.recommendForUserSubset(queries, k)
            .select("uid", F.posexplode("recommendations").alias("pos", "rec"))
            .join(items, F.col("rec.iid") == F.col("iid"))
            .groupBy("uid").agg(F.array_sort(F.collect_list(F.struct("pos", S.ITEM)))
                                .alias("_l")))
    return (recs.join(users, "uid")
            .select(S.USER, F.col(f"_l.{S.ITEM}").alias(partitions.ALS_ITEMS)))


def current_champion(cfg: Config) -> str | None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return str(MlflowClient().get_model_version_by_alias(cfg.ranker.name, CHAMPION).version)
    except MlflowException:
        return None


def run(spark, cfg: Config, ds: str) -> EvaluationRecord:
    import mlflow

    t0 = time.monotonic()
    setup_mlflow(cfg)
    sas, ranker = SasrecRecord.read(cfg, ds), RankerRecord.read(cfg, ds)
    champion = current_champion(cfg)
    rankers = [("ranker", ranker.name, ranker.version)]
    if champion is not None and champion != ranker.version:
        rankers.append(("champion", ranker.name, champion))
    job = partitions.Job(cfg, ds, "split", rankers=tuple(rankers),
                         sasrec=(sas.name, sas.version),
                         baselines=("popularity", "item_knn", "buy_again"))
    seqs = sequences(spark, cfg, ds)
    split = lake.split(cfg, ds)
    ks = sorted(set(cfg.model.metrics_k) | {cfg.scoring.top_n})
    extra = seqs.agg(F.max(F.size(S.RECENT_PURCHASES))).first()[0] or 0
    als = als_lists(steps_of(seqs), at=split, weights=cfg.events.weights,
                    k=max(ks) + extra, seed=cfg.model.seed)
    sums = map_users(spark, seqs.join(als, S.USER, "left"), partitions.evaluate, job,
                     partitions.evaluation_schema())
    merged = (sums.groupBy("model", "kind", "key").agg(F.sum("value").alias("value"))
              .toArrow().to_pydict())
    vocab = inputs.night_vocab(cfg, ds)
    ctx = inputs.load_context(cfg, ds, "split", vocab, inputs.load_catalog(cfg, ds))
    reports = Evaluation(ctx, ks).merge(merged).reports()
    order = ["ranker", "champion", "sasrec", "popularity", "item_knn", "buy_again", "als"]
    reports = {name: reports[name] for name in order if name in reports}
    record = EvaluationRecord(ds=ds, run_id=sas.run_id, challenger_version=ranker.version,
                              champion_version=champion if len(rankers) > 1 else None,
                              split=split.isoformat(), reports=reports)
    record.write(cfg)
    served = feedback.run(spark, cfg, ds)  # yesterday's published lists against today
    with mlflow.start_run(run_id=sas.run_id):
        mlflow.log_metrics(feedback.mlflow_metrics(served))
        if served.served:
            mlflow.log_dict(served.summary(), "served_feedback.json")
        for name, rep in reports.items():
            if name != "champion":
                prefix = "" if name == "ranker" else f"{name}."
                mlflow.log_metrics({prefix + metric_key(k): float(v) for k, v in rep.items()})
        mlflow.log_figure(plots.metrics_at_k(reports), "plots/metrics_at_k.png")
        mlflow.log_text(comparison_table(reports), "comparison.md")
        # the same comparison as a table the UI can sort and chart (one row per model)
        mlflow.log_table({"model": list(reports),
                          **{k: [float(reports[m].get(k, float("nan"))) for m in reports]
                             for k in ("ndcg@10", "hr@10", "recall@10", "mrr", "coverage")}},
                         artifact_file="comparison.json")
        # and a run per model nested under the night's, each with the same metric names,
        # so the UI compares them side by side
        log_model_runs(reports, {"ds": ds, "stage": "evaluate"})
        mlflow.log_metric("evaluate_seconds", time.monotonic() - t0)
    log.info("evaluate ds=%s on %d holdout users in %.0fs: %s", ds,
             reports["ranker"]["users"], time.monotonic() - t0,
             " | ".join(f"{n} ndcg@10={r.get('ndcg@10', float('nan')):.4f}"
                        for n, r in reports.items()))
    return record


def main(argv: list[str] | None = None) -> None:
    """spark-submit jobs/evaluate.py --ds YYYY-MM-DD [--config F]"""
    job_main(run, "evaluate", __doc__, argv)


if __name__ == "__main__":
    main()
