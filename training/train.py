"""The night's `train` step: SASRec, fitted on what happened before the ranker's label
windows, logged to the night's MLflow run and registered.

Time line of one night (T = the end of ds), with `ranker.label_windows` = 3:

    ... SASRec's data ... | window 3 | window 2 | window 1 | holdout | T
                      label_start                        split

The ranker (`training.train_ranker`) learns from each label window with features as of
that window's start (`jobs/ranker_rows.py`), is evaluated on the holdout with features as
of the split (`jobs/evaluate.py`), and serves with features as of T (`jobs/score.py`).
SASRec sees only what happened before the earliest window, so its scores are as honest in
the ranker's training rows as on the holdout and at serving time.

Idempotent: a rerun of the night on the same inputs and settings reuses the version it
registered the first time (`force` retrains anyway).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time

import mlflow
import numpy as np

from nightshelf import lake
from nightshelf import schema as S
from nightshelf.config import Config
from nightshelf.records import Record, SasrecRecord
from nightshelf.tracking import (
    CHAMPION,
    SASREC_TAG,
    log_datasets,
    log_keras_model,
    setup_mlflow,
)
from training import fit as loop
from training import inputs, plots
from training.model import SASRec, build_sasrec, item_vocabulary, scoring_model
from training.steps import Steps

log = logging.getLogger(__name__)


def fit(cfg: Config, before: Steps, vocab: np.ndarray, warm=None, text_sim=None):
    """Fit SASRec on the steps given (at most `model.max_train_users` users, a seeded
    sample); 10% of them kept for early stopping. With `warm` (the champion's scoring
    model), start from its weights and train at most `model.warm_epochs` epochs. Past
    `model.sampled_softmax_above` items the loss is the sampled softmax. With `text_sim`
    (each item's nearest items by text), the items training never showed are placed among
    their text neighbours afterwards (`place_by_text`)."""
    m = cfg.model
    if len(before) > m.max_train_users:
        rows = np.sort(np.random.default_rng(m.seed).choice(len(before), m.max_train_users,
                                                            replace=False))
        before = before.take(rows)
    x, y, w = inputs.next_item_arrays(before, m.max_len, cfg.events.weights)
    if len(x) < 10:
        raise ValueError(f"only {len(x)} users with two or more steps before the label "
                         f"windows: too little history to train on (land more days)")
    rng = np.random.default_rng(m.seed)
    order = rng.permutation(len(x))
    n_val = max(1, len(x) // 10)
    val, tr = order[:n_val], order[n_val:]
    model = build_sasrec(len(vocab), m.max_len, m.dim, m.blocks, m.heads, m.dropout)
    warmed = warm is not None and warm_start(model, vocab, warm)
    epochs = min(m.epochs, m.warm_epochs) if warmed else m.epochs
    negatives = m.negatives if len(vocab) > m.sampled_softmax_above else 0
    _, eval_step = loop.make_step(model, optimizer=None)

    def validate(epoch: int) -> float:  # higher is better
        return -loop.validation_loss(eval_step, x[val], y[val], w[val], m.batch_size)

    def on_epoch(epoch: int, logs: dict) -> None:
        metrics = {"loss": logs["loss"], "val_loss": -logs["val"]}
        mlflow.log_metrics(metrics, step=epoch)
        log.info("epoch %d/%d loss=%.4f val_loss=%.4f (%.1fs)", epoch, epochs,
                 metrics["loss"], metrics["val_loss"], logs["epoch_seconds"])

    hist = loop.train(model, x[tr], y[tr], w[tr], epochs=epochs, batch_size=m.batch_size,
                      learning_rate=m.learning_rate, seed=m.seed, validate=validate,
                      patience=m.patience, on_epoch=on_epoch, negatives=negatives,
                      deadline=time.monotonic() + 60 * m.max_train_minutes)
    history = {"loss": hist["loss"], "val_loss": [-v for v in hist["val"]]}
    placed = place_by_text(model, y, w, text_sim) if text_sim is not None else 0
    return model, history, {"train_sequences": int(len(tr)), "val_sequences": int(n_val),
                            "warm_start": bool(warmed), "sampled_negatives": negatives,
                            "text_placed_items": placed}


def place_by_text(model: SASRec, y: np.ndarray, w: np.ndarray, text_sim) -> int:
    """Give each item that no training target showed (new items, above all) an embedding
    among its text neighbours that training did show: their similarity-weighted mean,
    scaled to their mean norm, so the item can be ranked the night it appears, scored as
    the items its title resembles. Returns how many items were placed."""
    emb = model.item_embedding.embeddings.numpy()
    size = len(emb)
    seen = np.bincount(y[w > 0].ravel(), minlength=size)[:size] > 0
    seen[:2] = False  # padding and unknown are nobody's neighbours
    cold = np.flatnonzero(~seen)
    cold = cold[cold >= 2]
    if not len(cold):
        return 0
    sim = text_sim[cold][:, np.flatnonzero(seen)]
    weight = np.asarray(sim.sum(axis=1)).ravel()
    ok = weight > 0
    if not ok.any():
        return 0
    known = emb[seen]
    mean = np.asarray(sim[ok] @ known) / weight[ok, None]
    norm = np.asarray(sim[ok] @ np.linalg.norm(known, axis=1)).ravel() / weight[ok]
    mean *= (norm / np.maximum(np.linalg.norm(mean, axis=1), 1e-9))[:, None]
    emb[cold[ok]] = mean.astype(emb.dtype)
    model.item_embedding.embeddings.assign(emb)
    log.info("text: %d of %d items training never showed placed among their text "
             "neighbours", int(ok.sum()), len(cold))
    return int(ok.sum())


def warm_start(model: SASRec, vocab: np.ndarray, champion) -> bool:
    """Copy the champion's SASRec weights into `model` where the architecture agrees: every
    layer as it is, item embeddings row by row for the items both vocabularies hold; new
    items start at the mean known embedding. False (and `model` untouched) when the
    architectures differ."""
    old = next(layer for layer in champion.layers if isinstance(layer, SASRec))

    def others(m):  # every weight but the item embeddings, in creation order
        return [v for v in m.weights if v is not m.item_embedding.embeddings]

    if [tuple(v.shape) for v in others(old)] != [tuple(v.shape) for v in others(model)]:
        log.info("warm start skipped: the champion's SASRec has another architecture")
        return False
    for new_w, old_w in zip(others(model), others(old)):
        new_w.assign(old_w.numpy())
    old_emb = old.item_embedding.embeddings.numpy()
    pos = {v: i for i, v in enumerate(str(v) for v in item_vocabulary(champion))}
    rows = np.array([pos.get(str(v), -1) for v in vocab])
    emb = np.tile(old_emb[2:].mean(axis=0), (len(vocab), 1)).astype(np.float32)
    emb[rows >= 0] = old_emb[rows[rows >= 0]]
    model.item_embedding.embeddings.assign(emb)
    log.info("warm start from the champion's SASRec: %d of %d items known", int((rows >= 0)
             .sum()), len(vocab))
    return True


def champion_sasrec(cfg: Config):
    """The SASRec scoring model the current champion ranker reads, or None."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        champ = client.get_model_version_by_alias(cfg.ranker.name, CHAMPION)
    except MlflowException:
        return None
    version = champ.tags.get(SASREC_TAG)
    return mlflow.keras.load_model(f"models:/{cfg.model.name}/{version}") if version else None


def inputs_fingerprint(cfg: Config, ds: str) -> str:
    """SHA-256 of what training reads (the feature tables' rows, in a fixed order, as Arrow
    IPC) and of the settings that shape the models: equal fingerprints train equal models."""
    import pyarrow as pa

    h = hashlib.sha256()
    for table, key in (("sequences", S.USER), ("items", S.ITEM)):
        t = lake.read_parquet(lake.features(cfg, table, ds),
                              needs=f"the features job for ds={ds}").sort_by(key)
        t = t.select(sorted(t.column_names)).combine_chunks()
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, t.schema) as writer:
            writer.write_table(t, max_chunksize=65536)
        h.update(sink.getvalue())
    settings = {k: vars(getattr(cfg, k)) for k in ("model", "ranker", "scoring")}
    settings["weights"] = cfg.events.weights
    settings["popularity_days"] = cfg.features.popularity_days
    settings["text"] = vars(cfg.text)
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()


def reusable(cfg: Config, record: Record | None, fingerprint: str, name: str,
             version: str) -> bool:
    """Was the night's earlier record made on exactly these inputs, and is its model still
    registered? A rerun of the night then serves the same model."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    if record is None or record.fingerprint != fingerprint:
        return False
    try:
        MlflowClient().get_model_version(name, version)
    except MlflowException:
        return False
    return True


def run(cfg: Config, ds: str, force: bool = False) -> SasrecRecord:
    """Fit SASRec before the label windows, log it to a new night run, register it."""
    import keras
    from mlflow.models import infer_signature

    keras.utils.set_random_seed(cfg.model.seed)
    setup_mlflow(cfg)
    fingerprint = inputs_fingerprint(cfg, ds)
    previous = SasrecRecord.find(cfg, ds)
    if not force and previous and reusable(cfg, previous, fingerprint, previous.name,
                                           previous.version):
        log.info("train ds=%s: inputs and settings unchanged since run %s; reusing %s v%s "
                 "(nightshelf train --force retrains)", ds, previous.run_id, previous.name,
                 previous.version)
        return previous
    vocab = inputs.night_vocab(cfg, ds)
    steps = inputs.load_steps(inputs.sequences_table(cfg, ds), vocab)
    # SASRec is fitted on what happened before the earliest label window
    start = lake.label_window(cfg, ds, cfg.ranker.label_windows)[0]
    before, _ = steps.cut(start, cfg.scoring.exclusion_window_days)
    items = [str(v) for v in vocab[2:]]
    log.info("train ds=%s: SASRec on %d users' steps before %s, %d items", ds, len(before),
             start.isoformat(), len(items))
    with mlflow.start_run(run_name=f"night-{ds}") as run:
        mlflow.set_tags({"ds": ds, "stage": "train", "model": "sasrec+dcn-ranker"})
        mlflow.log_params({f"model.{k}": v for k, v in vars(cfg.model).items()})
        mlflow.log_params({"data.users": len(steps), "data.items": len(items),
                           "data.label_start": start.isoformat(), "data.ds": ds})
        log_datasets({f"{t} ds={ds}": lake.features(cfg, t, ds) for t in ("sequences", "items")},
                     fingerprint)
        t0 = time.monotonic()
        warm = champion_sasrec(cfg) if cfg.model.warm_start else None
        text = inputs.load_text(cfg, ds, vocab)
        model, history, sizes = fit(cfg, before, vocab, warm,
                                    text.sim if text is not None else None)
        seconds = time.monotonic() - t0
        mlflow.log_params({f"data.{k}": v for k, v in sizes.items()})
        mlflow.log_metric("sasrec.train_seconds", seconds)
        mlflow.log_figure(plots.training_curves(history), "plots/training_curves.png")
        scorer = scoring_model(model, items)
        example = np.array([[""] * (cfg.model.max_len - 1) + [items[0]]], dtype=str)
        signature = infer_signature(example, np.asarray(scorer.predict_on_batch(example)))
        info = log_keras_model(
            scorer, "sasrec", example, signature=signature, registered_model_name=cfg.model.name,
            pip_requirements=[f"keras=={keras.__version__}", "tensorflow-cpu==2.21.0"])
    record = SasrecRecord(ds=ds, run_id=run.info.run_id, name=cfg.model.name,
                          version=str(info.registered_model_version), fingerprint=fingerprint,
                          epochs_run=len(history["loss"]), train_seconds=seconds, sizes=sizes)
    record.write(cfg)
    log.info("train ds=%s: registered %s v%s in %.0fs", ds, record.name, record.version,
             seconds)
    return record
