"""Registered models, loaded for serving: a ranker version with the SASRec it reads, and
a SASRec as a scorer of batches of users over tonight's vocabulary.

The exported model takes item-id strings (its vocabulary travels inside it as a
`StringLookup`), so a batch's vocabulary indices are turned back into ids, and the model's
logits are laid out over the vocabulary the caller works in: a model trained on an older
vocabulary scores tonight's items, and items it never saw get the row's minimum.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Callable

import numpy as np

from nightshelf.config import Config
from nightshelf.tracking import SASREC_TAG, setup_mlflow
from training import lists, ranker
from training.model import item_vocabulary
from training.steps import Steps

ListMaker = Callable[..., tuple[np.ndarray, np.ndarray]]


SETTINGS_TAG = "serving_settings"  # on a ranker version: what shaped its inputs (JSON)


@dataclass(frozen=True)
class Settings:
    """What shapes a ranker's inputs; logged with its version, read back to serve it."""
    max_len: int                   # SASRec's input length
    candidates: dict[str, int]     # per source, per user
    weights: dict[str, float]      # event-type weights (features, repeat candidates)

    @classmethod
    def of(cls, cfg: Config) -> "Settings":
        return cls(cfg.model.max_len, dict(cfg.ranker.candidates), dict(cfg.events.weights))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Settings":
        return cls(**json.loads(text))


def load_registered(cfg: Config, name: str, version: str):
    """(ranker, its SASRec scoring model, the settings it was trained with) of a registered
    ranker version."""
    import mlflow
    from mlflow import MlflowClient

    model = mlflow.keras.load_model(f"models:/{name}/{version}")
    tags = MlflowClient().get_model_version(name, version).tags
    missing = [t for t in (SASREC_TAG, SETTINGS_TAG) if t not in tags]
    if missing:
        raise ValueError(f"registered model {name} v{version} has no {missing} tag(s): it "
                         f"was not registered by this version of training.train_ranker "
                         f"(retrain: nightshelf train-ranker --force)")
    settings = Settings.from_json(tags[SETTINGS_TAG])
    sasrec = mlflow.keras.load_model(f"models:/{cfg.model.name}/{tags[SASREC_TAG]}")
    return model, sasrec, settings


def load_models(cfg: Config, rankers: tuple[tuple[str, str, str], ...],
                sasrec: tuple[str, str] | None, vocab: np.ndarray
                ) -> tuple[dict[str, ListMaker], Callable[[Steps], np.ndarray] | None]:
    """({role: list maker} for each (role, name, version) of `rankers`, each served with the
    settings registered with it, plus "sasrec" for SASRec alone when `sasrec` = (name,
    version) is given (tonight's `model.max_len`: it was trained tonight); that scorer)."""
    import mlflow

    setup_mlflow(cfg)
    bs = cfg.scoring.batch_size
    makers: dict[str, ListMaker] = {}

    def ranker_maker(model, scorer, settings: Settings):
        own: dict = {}  # tonight's context with the model's weights, made once

        def make(ctx, steps, k):
            if ctx.weights != settings.weights:
                if own.get("from") is not ctx:
                    own.update({"from": ctx, "ctx": dataclasses.replace(
                        ctx, weights=settings.weights)})
                ctx = own["ctx"]
            return ranker.top_lists(model, ctx, steps, scorer, settings.candidates, k)
        return make

    for role, name, version in rankers:
        model, sasrec_model, settings = load_registered(cfg, name, version)
        scorer = sasrec_scorer(sasrec_model, vocab, settings.max_len, bs)
        makers[role] = ranker_maker(ranker.ItemCachedScorer(model), scorer, settings)
    alone = None
    if sasrec is not None:
        name, version = sasrec
        alone = sasrec_scorer(mlflow.keras.load_model(f"models:/{name}/{version}"), vocab,
                              cfg.model.max_len, bs)
        makers["sasrec"] = lambda ctx, steps, k: lists.from_dense(ctx, steps, alone(steps), k)
    return makers, alone


def sasrec_scorer(model, vocab: np.ndarray, max_len: int,
                  batch_size: int) -> Callable[[Steps], np.ndarray]:
    """steps -> [n, len(vocab)] logits from an exported (strings-in) scoring model."""
    own = [str(v) for v in item_vocabulary(model)]
    ids = np.asarray(vocab, dtype=str)
    pos = {v: i for i, v in enumerate(own)}
    cols = np.array([pos.get(v, -1) for v in ids])
    same = own == list(ids)
    unseen = cols < 0

    import tensorflow as tf

    logits = tf.function(lambda x: model(x, training=False), input_signature=[
        tf.TensorSpec((None, max_len), tf.string)])  # one trace, whatever the batch size

    def score(steps: Steps) -> np.ndarray:
        out = []
        for start in range(0, len(steps), batch_size):
            x = ids[steps.slice(start, start + batch_size).padded(max_len)]
            s = np.asarray(logits(x), dtype=np.float32)
            if not same:
                s, raw = s[:, np.maximum(cols, 0)], s
                if unseen.any():
                    s[:, unseen] = raw.min(axis=1, keepdims=True)
            out.append(s)
        return np.concatenate(out) if out else np.zeros((0, len(ids)), np.float32)
    return score
