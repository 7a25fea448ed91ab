"""Train the night's models, evaluate them against the baselines, log and register in MLflow.

`run(cfg, ds)`: features (Parquet) -> time-based holdout at the split -> SASRec fitted on
what happened before the ranker's label window -> DCN ranker fitted on that window's
candidates -> metrics@K of the ranker, of SASRec alone and of the baselines (popularity,
item-kNN, ALS) on the same holdout -> MLflow run (params, per-epoch curves, plots,
comparison table, both models with signatures, registered versions) -> train.json.

Time line of one night (T = the end of ds), with `ranker.label_windows` = 3:

    ... SASRec's data ... | window 3 | window 2 | window 1 | holdout | T
                      label_start                        split

The ranker learns from each label window with features as of that window's start, is
evaluated on the holdout with features as of the split, and serves with features as of T.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from nightshelf.config import Config
from training import inputs, plots
from training.baselines import ItemKNN, als_scores
from training.evaluate import evaluate, model_scorer, popularity
from training.tracking import SASREC_TAG, metric_key, read_record, setup_mlflow, write_record

log = logging.getLogger(__name__)

POPULARITY_DAYS = 7


def fit(cfg: Config, before: inputs.Sequences, index: dict[str, int]):
    """Fit SASRec on the sequences given (those before the ranker's label windows); 10% of
    users kept for early stopping."""
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


def label_windows(cfg: Config, before: inputs.Sequences, split) -> list[tuple]:
    """The ranker's label windows, newest first: (start, sequences known at start, what users
    did in [start, start + label_days)), for `ranker.label_windows` consecutive windows."""
    from training import candidates

    out, upto = [], before
    for k in range(cfg.ranker.label_windows):
        end = candidates.split_time(split, k * cfg.ranker.label_days)
        start = candidates.split_time(split, (k + 1) * cfg.ranker.label_days)
        if k:
            upto, _ = inputs.holdout(before, end, cfg.scoring.exclusion_window_days)
        known, window = inputs.holdout(upto, start, cfg.scoring.exclusion_window_days)
        out.append((start, known, window))
    return out


def fit_ranker(cfg: Config, before: inputs.Sequences, split, vocab: list[str],
               catalog: inputs.Catalog, sasrec) -> tuple[object, dict, dict]:
    """The DCN ranker, trained on what users did in the label windows before `split`, each
    with candidates and features as of the start of its window."""
    import mlflow

    from training import candidates, ranker

    parts, ys, ws, users, touched, offset = [], [], [], 0, 0, 0
    for start, known, window in label_windows(cfg, before, split):
        ctx = candidates.context(known, start, vocab, catalog, cfg.events.weights)
        cands = candidates.generate(ctx, candidates.holdout_rows(ctx, window), sasrec,
                                    cfg.ranker.candidates, cfg.scoring.batch_size)
        y, w = candidates.labels(cands, window.after, vocab, cfg.events.weights)
        cands.rows = cands.rows + offset  # one user in two windows is two lists
        offset += len(window.users)
        parts.append(cands)
        ys.append(y)
        ws.append(w)
        users += len(window.users)
        touched += sum(len({i for i, _ in steps}) for steps in window.after)
        log.info("ranker: window from %s: %d candidates for %d users, %d positives",
                 start.isoformat(), len(cands), len(window.users), int(y.sum()))
    if not users:
        raise ValueError(f"no user came back in the {cfg.ranker.label_windows} label window(s) "
                         f"before {split.isoformat()}: nothing to train the ranker on (land "
                         f"more days or raise ranker.label_days)")
    cands = candidates.concat(parts)
    y, w = np.concatenate(ys), np.concatenate(ws)
    sizes = {"ranker_rows": len(cands), "ranker_users": users,
             "ranker_positives": int(y.sum()),
             "ranker_candidate_recall": round(float(y.sum()) / max(touched, 1), 4)}
    log.info("ranker: %d candidates, %d positives (candidates hold %.0f%% of what users "
             "touched)", len(cands), int(y.sum()), 100 * sizes["ranker_candidate_recall"])

    def on_epoch(epoch: int, logs: dict) -> None:
        mlflow.log_metrics({f"ranker.{k}": float(v) for k, v in logs.items()}, step=epoch)
        log.info("ranker epoch %d/%d loss=%.4f val_loss=%.4f val_auc=%.4f", epoch,
                 cfg.ranker.epochs, logs["loss"], logs["val_loss"], logs["val_auc"])

    model, history = ranker.fit(cands, y, w, cfg.ranker, cfg.model.seed, on_epoch)
    return model, history, sizes


def inputs_fingerprint(cfg: Config, ds: str) -> str:
    """SHA-256 of what training reads (the feature tables' rows, in a fixed order) and of the
    settings that shape the models: equal fingerprints train equal models."""
    import hashlib
    import json

    from nightshelf import lake
    from nightshelf import schema as S

    h = hashlib.sha256()
    for table, key in (("sequences", S.USER), ("items", S.ITEM)):
        t = lake.read_parquet(lake.features(cfg, table, ds)).sort_by(key)
        h.update(json.dumps(t.to_pydict(), sort_keys=True, default=str).encode())
    settings = {k: vars(getattr(cfg, k)) for k in ("model", "ranker", "scoring")}
    settings["weights"] = cfg.events.weights
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
    from mlflow.models import infer_signature

    from training import candidates, ranker
    from training.model import scoring_model

    keras.utils.set_random_seed(cfg.model.seed)
    setup_mlflow(cfg)
    fingerprint = inputs_fingerprint(cfg, ds)
    previous = None if force else reusable(cfg, ds, fingerprint)
    if previous:
        log.info("train ds=%s: inputs and settings unchanged since run %s; reusing %s v%s "
                 "(nightshelf train --force retrains)", ds, previous["run_id"],
                 previous["model_name"], previous["model_version"])
        return previous
    catalog, seqs, split, before, hold = inputs.night_holdout(cfg, ds)
    items = inputs.vocabulary(seqs, catalog)
    vocab = [inputs.PAD, inputs.OOV] + items
    index = {item: i for i, item in enumerate(vocab)}
    ks = sorted(set(cfg.model.metrics_k) | {cfg.scoring.top_n})
    label_start = candidates.split_time(split, cfg.ranker.label_windows * cfg.ranker.label_days)
    log.info("train ds=%s: %d users before %s, %d holdout users, %d items",
             ds, len(before.users), split.isoformat(), len(hold.users), len(items))
    if not hold.users:
        raise ValueError(f"ds={ds}: no user came back after {split.isoformat()}; the holdout is "
                         f"empty (check model.holdout_days and that the day's events landed)")

    with mlflow.start_run(run_name=f"night-{ds}") as run:
        mlflow.set_tags({"ds": ds, "stage": "train", "model": "sasrec+dcn-ranker"})
        mlflow.log_params({f"model.{k}": v for k, v in vars(cfg.model).items()})
        mlflow.log_params({f"ranker.{k}": v for k, v in vars(cfg.ranker).items()})
        mlflow.log_params({"data.users": len(seqs.users), "data.items": len(items),
                           "data.holdout_users": len(hold.users),
                           "data.split": split.isoformat(), "data.ds": ds})
        t0 = time.monotonic()
        # SASRec sees only what happened before the ranker's label windows, so its scores
        # there are as honest as on the holdout and at serving time
        sasrec_before, _ = inputs.holdout(before, label_start, cfg.scoring.exclusion_window_days)
        model, history, sizes = fit(cfg, sasrec_before, index)
        scorer_model = scoring_model(model, items)
        sasrec = model_scorer(scorer_model, cfg.model.max_len, cfg.scoring.batch_size)
        rank_model, rank_history, rank_sizes = fit_ranker(cfg, before, split, vocab, catalog,
                                                          sasrec)
        train_seconds = time.monotonic() - t0
        mlflow.log_params({f"data.{k}": v for k, v in {**sizes, **rank_sizes}.items()})
        mlflow.log_metric("train_seconds", train_seconds)

        ctx = candidates.context(before, split, vocab, catalog, cfg.events.weights)
        rows = candidates.holdout_rows(ctx, hold)
        extra = {"item_users": ctx.item_users, "n_users": len(before.users)}
        rank_report, _ = evaluate(ranker.rank(rank_model, ctx, rows, sasrec,
                                              cfg.ranker.candidates, cfg.scoring.batch_size),
                                  hold, vocab, catalog, ks, **extra)
        sasrec_report, _ = evaluate(sasrec(hold.history), hold, vocab, catalog, ks, **extra)
        baselines = baseline_reports(cfg, before, hold, index, vocab, catalog, split, ks,
                                     extra)
        reports = {"ranker": rank_report, "sasrec": sasrec_report, **baselines}
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
        info = mlflow.keras.log_model(
            rank_model, name="model", registered_model_name=cfg.ranker.name,
            signature=_ranker_signature(ctx, rows[:2], sasrec, cfg, rank_model),
            pip_requirements=requirements)
        version = str(info.registered_model_version)
        from mlflow import MlflowClient

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
                  "split": split.isoformat(), "ranker_label_start": label_start.isoformat(),
                  "holdout_users": len(hold.users),
                  "epochs_run": len(history.get("loss", [])),
                  "ranker_epochs_run": len(rank_history.get("loss", []))}
    write_record(cfg, ds, "train", record)
    return record


def _ranker_signature(ctx, rows, sasrec, cfg: Config, model):
    from mlflow.models import infer_signature

    from training import candidates, ranker

    example = candidates.generate(ctx, rows, sasrec, cfg.ranker.candidates).select(
        np.arange(2))
    return infer_signature(example.inputs(), ranker.predict(model, example))


def _short(rep: dict) -> str:
    return " ".join(f"{k}={rep[k]:.4f}" for k in ("ndcg@10", "recall@10", "hr@10") if k in rep)
