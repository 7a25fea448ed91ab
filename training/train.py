"""Train the night's sequence model, evaluate it against popularity, log and register in MLflow.

`run(cfg, ds)`: features (Parquet) -> time-based holdout -> fit SASRec -> metrics@K for the
model and the popularity baseline on the same holdout -> MLflow run (params, per-epoch
metrics, plots, comparison table, model with signature, registered version) -> train.json.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from nightshelf.config import Config
from training import inputs, plots
from training.baselines import ItemKNN, als_scores
from training.evaluate import evaluate, item_user_counts, model_scorer, popularity
from training.tracking import metric_key, setup_mlflow, write_record

log = logging.getLogger(__name__)

POPULARITY_DAYS = 7


def fit(cfg: Config, before: inputs.Sequences, index: dict[str, int]):
    """Fit SASRec on the sequences before the split; 10% of users kept for early stopping."""
    import mlflow

    from training import fit as loop
    from training.model import build_sasrec

    m = cfg.model
    x, y, w = inputs.next_item_arrays(before, index, m.max_len, cfg.events.weights)
    if len(x) < 10:
        raise ValueError(f"only {len(x)} users with two or more steps before the holdout: "
                         f"too little history to train on (land more days)")
    rng = np.random.default_rng(m.seed)
    order = rng.permutation(len(x))
    n_val = max(1, len(x) // 10)
    val, tr = order[:n_val], order[n_val:]
    model = build_sasrec(len(index), m.max_len, m.dim, m.blocks, m.heads, m.dropout)

    _, eval_step = loop.make_step(model, optimizer=None)

    def validate(epoch: int) -> float:  # higher is better
        return -loop.validation_loss(eval_step, x[val], y[val], w[val], m.batch_size)

    def on_epoch(epoch: int, logs: dict) -> None:
        metrics = {"loss": logs["loss"], "val_loss": -logs["val"]}
        mlflow.log_metrics(metrics, step=epoch)
        log.info("epoch %d/%d loss=%.4f val_loss=%.4f (%.1fs)", epoch, m.epochs,
                 metrics["loss"], metrics["val_loss"], logs["epoch_seconds"])

    hist = loop.train(model, x[tr], y[tr], w[tr], epochs=m.epochs, batch_size=m.batch_size,
                      learning_rate=m.learning_rate, seed=m.seed, validate=validate,
                      patience=m.patience, on_epoch=on_epoch)
    history = {"loss": hist["loss"], "val_loss": [-v for v in hist["val"]]}
    return model, history, {"train_sequences": int(len(tr)), "val_sequences": int(n_val)}


def baseline_reports(cfg: Config, before: inputs.Sequences, hold: inputs.Holdout,
                     index: dict[str, int], vocab: list[str], catalog: inputs.Catalog, split,
                     ks: list[int], extra: dict) -> dict[str, dict]:
    """Popularity, item-kNN and ALS, fitted on what happened before the split, on the holdout."""
    pop = popularity(before, index, len(vocab), split, POPULARITY_DAYS, cfg.events.weights)
    pop_report, _ = evaluate(np.tile(pop, (len(hold.users), 1)), hold, vocab, catalog, ks,
                             **extra)
    knn = ItemKNN(len(vocab)).fit([[index[i] for i in s if i in index] for s in before.items])
    knn_scores = knn.score([[index[i] for i in h if i in index] for h in hold.history])
    knn_report, _ = evaluate(knn_scores, hold, vocab, catalog, ks, **extra)
    return {"popularity": pop_report, "item_knn": knn_report,
            "als": als_report(cfg, before, hold, index, vocab, catalog, ks, extra)}


def als_report(cfg: Config, before: inputs.Sequences, hold: inputs.Holdout,
               index: dict[str, int], vocab: list[str], catalog: inputs.Catalog,
               ks: list[int], extra: dict) -> dict:
    from nightshelf.spark import get_spark

    spark = get_spark(cfg, "als")
    try:
        row = {u: r for r, u in enumerate(before.users)}
        histories = [[index[i] for i in s if i in index] for s in before.items]
        weights = [[cfg.events.weights.get(t, 1.0) for i, t in zip(s, ts) if i in index]
                   for s, ts in zip(before.items, before.types)]
        scores = als_scores(spark, histories, weights, [row[u] for u in hold.users],
                            len(vocab), seed=cfg.model.seed)
    finally:
        spark.stop()
    report, _ = evaluate(scores, hold, vocab, catalog, ks, **extra)
    return report


def comparison_table(reports: dict[str, dict]) -> str:
    """Markdown: one row per metric (slices included), one column per model."""
    keys = list(dict.fromkeys(k for rep in reports.values() for k in rep))
    names = list(reports)
    lines = ["| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for k in keys:
        cells = [f"{reports[n][k]:.4f}" if k in reports[n] else "-" for n in names]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run(cfg: Config, ds: str) -> dict:
    import keras
    import mlflow
    from mlflow.models import infer_signature

    from training.model import scoring_model

    keras.utils.set_random_seed(cfg.model.seed)
    setup_mlflow(cfg)
    catalog, seqs, split, before, hold = inputs.night_holdout(cfg, ds)
    items = inputs.vocabulary(seqs, catalog)
    vocab = [inputs.PAD, inputs.OOV] + items
    index = {item: i for i, item in enumerate(vocab)}
    ks = sorted(set(cfg.model.metrics_k) | {cfg.scoring.top_n})
    log.info("train ds=%s: %d users before %s, %d holdout users, %d items",
             ds, len(before.users), split.isoformat(), len(hold.users), len(items))
    if not hold.users:
        raise ValueError(f"ds={ds}: no user came back after {split.isoformat()}; the holdout is "
                         f"empty (check model.holdout_days and that the day's events landed)")

    with mlflow.start_run(run_name=f"night-{ds}") as run:
        mlflow.set_tags({"ds": ds, "stage": "train", "model": "sasrec"})
        mlflow.log_params({f"model.{k}": v for k, v in vars(cfg.model).items()})
        mlflow.log_params({"data.users": len(seqs.users), "data.items": len(items),
                           "data.holdout_users": len(hold.users),
                           "data.split": split.isoformat(), "data.ds": ds})
        t0 = time.monotonic()
        model, history, sizes = fit(cfg, before, index)
        train_seconds = time.monotonic() - t0
        mlflow.log_params({f"data.{k}": v for k, v in sizes.items()})
        mlflow.log_metric("train_seconds", train_seconds)
        scorer_model = scoring_model(model, items)

        score = model_scorer(scorer_model, cfg.model.max_len, cfg.scoring.batch_size)
        item_users = item_user_counts(before, index)
        extra = {"item_users": item_users, "n_users": len(before.users)}
        model_report, _ = evaluate(score(hold.history), hold, vocab, catalog, ks, **extra)
        baselines = baseline_reports(cfg, before, hold, index, vocab, catalog, split, ks,
                                     extra)
        reports = {"sasrec": model_report, **baselines}
        for name, rep in reports.items():
            prefix = "" if name == "sasrec" else f"{name}."
            mlflow.log_metrics({prefix + metric_key(k): float(v) for k, v in rep.items()})
        mlflow.log_figure(plots.training_curves(history), "plots/training_curves.png")
        mlflow.log_figure(plots.metrics_at_k(reports), "plots/metrics_at_k.png")
        mlflow.log_text(comparison_table(reports), "comparison.md")
        example = np.array([[""] * (cfg.model.max_len - 1) + [items[0]]], dtype=str)
        signature = infer_signature(example, np.asarray(scorer_model.predict_on_batch(example)))
        info = mlflow.keras.log_model(
            scorer_model, name="model", signature=signature,
            registered_model_name=cfg.model.name,
            pip_requirements=[f"keras=={keras.__version__}", "tensorflow-cpu==2.21.0"])
        version = str(info.registered_model_version)
        log.info("train ds=%s: sasrec %s | %s | registered %s v%s in %.0fs", ds,
                 _short(model_report),
                 " | ".join(f"{n} {_short(r)}" for n, r in baselines.items()),
                 cfg.model.name, version, train_seconds)
        record = {"ds": ds, "run_id": run.info.run_id, "model_name": cfg.model.name,
                  "model_version": version, "metrics": model_report,
                  "baselines": baselines, "train_seconds": train_seconds,
                  "split": split.isoformat(), "holdout_users": len(hold.users),
                  "epochs_run": len(history.get("loss", []))}
    write_record(cfg, ds, "train", record)
    return record


def _short(rep: dict) -> str:
    return " ".join(f"{k}={rep[k]:.4f}" for k in ("ndcg@10", "recall@10", "hr@10") if k in rep)
