"""Train the night's models, evaluate them against the baselines, log and register in MLflow.

`run(cfg, ds)`: features (Parquet) -> time-based holdout at the split -> SASRec fitted on
what happened before the ranker's label windows -> DCN ranker fitted on those windows'
candidates (`training.windows`) -> metrics@K of the ranker, of SASRec alone and of the
baselines (popularity, item-kNN, ALS) on the same holdout (`training.holdout`) -> MLflow run
(params, per-epoch curves, plots, comparison table, both models with signatures, registered
versions) -> train.json.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from nightshelf.config import Config
from training import holdout, inputs, lists, plots, windows
from training.steps import Steps
from training.tracking import SASREC_TAG, metric_key, read_record, setup_mlflow, write_record

log = logging.getLogger(__name__)


def fit(cfg: Config, before: Steps, vocab_size: int):
    """Fit SASRec on the steps given (those before the ranker's label windows); 10% of
    users kept for early stopping."""
    import mlflow

    from training import fit as loop
    from training.model import build_sasrec

    m = cfg.model
    x, y, w = inputs.next_item_arrays(before, m.max_len, cfg.events.weights)
    if len(x) < 10:
        raise ValueError(f"only {len(x)} users with two or more steps before the holdout: "
                         f"too little history to train on (land more days)")
    rng = np.random.default_rng(m.seed)
    order = rng.permutation(len(x))
    n_val = max(1, len(x) // 10)
    val, tr = order[:n_val], order[n_val:]
    model = build_sasrec(vocab_size, m.max_len, m.dim, m.blocks, m.heads, m.dropout)

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


def comparison_table(reports: dict[str, dict]) -> str:
    """Markdown: one row per metric (slices included), one column per model."""
    keys = list(dict.fromkeys(k for rep in reports.values() for k in rep))
    names = list(reports)
    lines = ["| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for k in keys:
        cells = [f"{reports[n][k]:.4f}" if k in reports[n] else "-" for n in names]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def fit_ranker(cfg: Config, night: inputs.Night, sasrec) -> tuple[object, dict, dict]:
    """The DCN ranker, trained on what users did in the label windows before the split, each
    with candidates and features as of the start of its window."""
    import mlflow

    from training import ranker

    cands, y, w, sizes = windows.ranker_rows(cfg, night, sasrec)

    def on_epoch(epoch: int, logs: dict) -> None:
        mlflow.log_metrics({f"ranker.{k}": float(v) for k, v in logs.items()}, step=epoch)
        log.info("ranker epoch %d/%d loss=%.4f val_loss=%.4f val_auc=%.4f", epoch,
                 cfg.ranker.epochs, logs["loss"], logs["val_loss"], logs["val_auc"])

    model, history = ranker.fit(cands, y, w, cfg.ranker, cfg.model.seed, on_epoch)
    return model, history, sizes


def inputs_fingerprint(cfg: Config, ds: str) -> str:
    """SHA-256 of what training reads (the feature tables' rows, in a fixed order, as Arrow
    IPC) and of the settings that shape the models: equal fingerprints train equal models."""
    import hashlib
    import json

    import pyarrow as pa

    from nightshelf import lake
    from nightshelf import schema as S

    h = hashlib.sha256()
    for table, key in (("sequences", S.USER), ("items", S.ITEM)):
        t = lake.read_parquet(lake.features(cfg, table, ds)).sort_by(key)
        t = t.select(sorted(t.column_names)).combine_chunks()
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, t.schema) as writer:
            writer.write_table(t, max_chunksize=65536)
        h.update(sink.getvalue())
    settings = {k: vars(getattr(cfg, k)) for k in ("model", "ranker", "scoring")}
    settings["weights"] = cfg.events.weights
    settings["popularity_days"] = cfg.features.popularity_days
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()


def reusable(cfg: Config, ds: str, fingerprint: str) -> dict | None:
    """The night's earlier training record, if it was trained on exactly these inputs and
    its model is still registered: a rerun of the night then serves the same model."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        previous = read_record(cfg, ds, "train")
    except FileNotFoundError:
        return None
    if previous.get("inputs_fingerprint") != fingerprint:
        return None
    try:
        MlflowClient().get_model_version(previous["model_name"], previous["model_version"])
    except MlflowException:
        return None
    return previous


def run(cfg: Config, ds: str, force: bool = False) -> dict:
    """Fit SASRec and the ranker before the split, evaluate on the holdout, log, register.

    Idempotent: a rerun of the night on the same inputs and settings reuses the version it
    registered the first time (`force` retrains anyway).
    """
    import keras
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    from training import ranker
    from training.model import scoring_model
    from training.serve import sasrec_scorer

    keras.utils.set_random_seed(cfg.model.seed)
    setup_mlflow(cfg)
    fingerprint = inputs_fingerprint(cfg, ds)
    previous = None if force else reusable(cfg, ds, fingerprint)
    if previous:
        log.info("train ds=%s: inputs and settings unchanged since run %s; reusing %s v%s "
                 "(nightshelf train --force retrains)", ds, previous["run_id"],
                 previous["model_name"], previous["model_version"])
        return previous
    night = inputs.night_holdout(cfg, ds)
    vocab, split = night.vocab, night.split
    items = [str(v) for v in vocab[2:]]
    hold_rows = night.holdout_rows
    start_labels = windows.label_start(cfg, split)
    log.info("train ds=%s: %d users before %s, %d holdout users, %d items",
             ds, len(night.before), split.isoformat(), len(hold_rows), len(items))
    if not len(hold_rows):
        raise ValueError(f"ds={ds}: no user came back after {split.isoformat()}; the holdout is "
                         f"empty (check model.holdout_days and that the day's events landed)")
    bs = cfg.scoring.batch_size

    with mlflow.start_run(run_name=f"night-{ds}") as run:
        mlflow.set_tags({"ds": ds, "stage": "train", "model": "sasrec+dcn-ranker"})
        mlflow.log_params({f"model.{k}": v for k, v in vars(cfg.model).items()})
        mlflow.log_params({f"ranker.{k}": v for k, v in vars(cfg.ranker).items()})
        mlflow.log_params({"data.users": len(night.steps), "data.items": len(items),
                           "data.holdout_users": len(hold_rows),
                           "data.split": split.isoformat(), "data.ds": ds})
        t0 = time.monotonic()
        # SASRec sees only what happened before the ranker's label windows, so its scores
        # there are as honest as on the holdout and at serving time
        sasrec_before, _ = night.before.cut(start_labels, cfg.scoring.exclusion_window_days)
        model, history, sizes = fit(cfg, sasrec_before, len(vocab))
        scorer_model = scoring_model(model, items)
        sasrec = sasrec_scorer(scorer_model, vocab, cfg.model.max_len, bs)
        rank_model, rank_history, rank_sizes = fit_ranker(cfg, night, sasrec)
        train_seconds = time.monotonic() - t0
        mlflow.log_params({f"data.{k}": v for k, v in {**sizes, **rank_sizes}.items()})
        mlflow.log_metric("train_seconds", train_seconds)

        ctx = holdout.item_context(cfg, night.before, split, vocab, night.catalog)
        sizes_c = cfg.ranker.candidates
        models = {
            "ranker": lambda c, s, k: ranker.top_lists(rank_model, c, s, sasrec, sizes_c, k),
            "sasrec": lambda c, s, k: lists.from_dense(c, s, sasrec(s), k),
            **holdout.baseline_makers()}
        reports = holdout.evaluate(cfg, night, ctx, models, bs, als=True)
        rank_report, sasrec_report = reports["ranker"], reports["sasrec"]
        baselines = {n: r for n, r in reports.items() if n not in ("ranker", "sasrec")}
        for name, rep in reports.items():
            prefix = "" if name == "ranker" else f"{name}."
            mlflow.log_metrics({prefix + metric_key(k): float(v) for k, v in rep.items()})
        mlflow.log_figure(plots.training_curves(history), "plots/training_curves.png")
        mlflow.log_figure(plots.training_curves(
            {k: v for k, v in rank_history.items() if "loss" in k}),
            "plots/ranker_training_curves.png")
        mlflow.log_figure(plots.metrics_at_k(reports), "plots/metrics_at_k.png")
        mlflow.log_text(comparison_table(reports), "comparison.md")

        example = np.array([[""] * (cfg.model.max_len - 1) + [items[0]]], dtype=str)
        signature = infer_signature(example, np.asarray(scorer_model.predict_on_batch(example)))
        requirements = [f"keras=={keras.__version__}", "tensorflow-cpu==2.21.0"]
        sas_info = mlflow.keras.log_model(
            scorer_model, name="sasrec", signature=signature,
            registered_model_name=cfg.model.name, pip_requirements=requirements)
        sasrec_version = str(sas_info.registered_model_version)
        example_users = night.before.take(hold_rows[:2])
        info = mlflow.keras.log_model(
            rank_model, name="model", registered_model_name=cfg.ranker.name,
            signature=_ranker_signature(ctx, example_users, sasrec, cfg, rank_model),
            pip_requirements=requirements)
        version = str(info.registered_model_version)
        MlflowClient().set_model_version_tag(cfg.ranker.name, version, SASREC_TAG,
                                             sasrec_version)
        log.info("train ds=%s: ranker %s | sasrec %s | %s | registered %s v%s (sasrec v%s) "
                 "in %.0fs", ds, _short(rank_report), _short(sasrec_report),
                 " | ".join(f"{n} {_short(r)}" for n, r in baselines.items()),
                 cfg.ranker.name, version, sasrec_version, train_seconds)
        record = {"ds": ds, "run_id": run.info.run_id, "model_name": cfg.ranker.name,
                  "model_version": version, "sasrec_version": sasrec_version,
                  "metrics": rank_report, "candidates": {"sasrec": sasrec_report},
                  "inputs_fingerprint": fingerprint,
                  "baselines": baselines, "train_seconds": train_seconds,
                  "split": split.isoformat(), "ranker_label_start": start_labels.isoformat(),
                  "holdout_users": int(len(hold_rows)),
                  "epochs_run": len(history.get("loss", [])),
                  "ranker_epochs_run": len(rank_history.get("loss", []))}
    write_record(cfg, ds, "train", record)
    return record


def _ranker_signature(ctx, steps, sasrec, cfg: Config, model):
    from mlflow.models import infer_signature

    from training import candidates, ranker

    example = candidates.generate(ctx, steps, sasrec, cfg.ranker.candidates).select(
        np.arange(2))
    return infer_signature(example.inputs(), ranker.predict(model, example))


def _short(rep: dict) -> str:
    return " ".join(f"{k}={rep[k]:.4f}" for k in ("ndcg@10", "recall@10", "hr@10") if k in rep)
