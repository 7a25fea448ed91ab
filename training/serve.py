"""Registered models, loaded for serving: a ranker version with the SASRec it reads, and
a SASRec as a scorer of batches of users over tonight's vocabulary.

The exported model takes item-id strings (its vocabulary travels inside it as a
`StringLookup`), so a batch's vocabulary indices are turned back into ids, and the model's
logits are laid out over the vocabulary the caller works in: a model trained on an older
vocabulary scores tonight's items, and items it never saw get the row's minimum. A ranker
is served split at x0 (`ItemCachedScorer`), with the numeric features it was trained on.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np
from keras import layers

from nightshelf.config import Config
from nightshelf.tracking import SASREC_TAG, setup_mlflow
from training import lists, ranker
from training.candidate_set import NUMERIC, CandidateSet
from training.candidates import generate
from training.model import SASRec, item_vocabulary
from training.steps import Steps

ListMaker = Callable[..., tuple[np.ndarray, np.ndarray]]


SETTINGS_TAG = "serving_settings"  # on a ranker version: what shaped its inputs (JSON)


# the numeric features of the rankers registered before the list was logged with them
FIRST_FEATURES = tuple(NUMERIC[:24])  # NUMERIC only grows at its end


@dataclass(frozen=True)
class Settings:
    """What shapes a ranker's inputs; logged with its version, read back to serve it."""
    max_len: int                   # SASRec's input length
    candidates: dict[str, int]     # per source, per user
    weights: dict[str, float]      # event-type weights (features, repeat candidates)
    features: tuple[str, ...] = FIRST_FEATURES  # its numeric input's columns, in order

    @classmethod
    def of(cls, cfg: Config) -> "Settings":
        return cls(cfg.model.max_len, dict(cfg.ranker.candidates), dict(cfg.events.weights),
                   tuple(NUMERIC))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Settings":
        data = json.loads(text)
        unknown = sorted(set(data.get("features", ())) - set(NUMERIC))
        if unknown:
            raise ValueError(f"serving settings name features this code does not compute: "
                             f"{unknown}; serve that version with the code that trained it")
        return cls(**{**data, "features": tuple(data.get("features", FIRST_FEATURES))})


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
            return top_lists(model, ctx, steps, scorer, settings.candidates, k,
                             settings.features)
        return make

    for role, name, version in rankers:
        model, sasrec_model, settings = load_registered(cfg, name, version)
        scorer = sasrec_scorer(sasrec_model, vocab, settings.max_len, bs)
        makers[role] = ranker_maker(ItemCachedScorer(model), scorer, settings)
    alone = None
    if sasrec is not None:
        name, version = sasrec
        alone = sasrec_scorer(mlflow.keras.load_model(f"models:/{name}/{version}"), vocab,
                              cfg.model.max_len, bs)
        makers["sasrec"] = lambda ctx, steps, k: lists.from_dense(ctx, steps, alone(steps), k)
    return makers, alone


def sasrec_scorer(model, vocab: np.ndarray, max_len: int,
                  batch_size: int) -> Callable[[Steps], np.ndarray]:
    """steps -> [n, len(vocab)] logits from an exported (strings-in) scoring model.

    The model's own layers run on its own indices: each of tonight's vocabulary indices is
    mapped once to the index the model's `StringLookup` gives that id (padding 0, unknown
    1), so no batch is turned into strings and back. The forward pass is compiled with XLA
    for one shape, [batch_size, max_len] (a shorter batch is padded), once per process."""
    import tensorflow as tf

    own = [str(v) for v in item_vocabulary(model)]
    ids = np.asarray(vocab, dtype=str)
    pos = {v: i for i, v in enumerate(own)}
    to_model = np.array([pos.get(v, 1) for v in ids], dtype=np.int32)  # "" -> 0, unknown 1
    to_model[0] = 0
    cols = np.array([pos.get(v, -1) for v in ids])
    same = own == list(ids)
    unseen = cols < 0
    sasrec = next(layer for layer in model.layers if isinstance(layer, SASRec))
    logits = tf.function(lambda x: sasrec(x, training=False, last_only=True), jit_compile=True,
                         input_signature=[tf.TensorSpec((batch_size, max_len), tf.int32)])

    def score(steps: Steps) -> np.ndarray:
        out = []
        for start in range(0, len(steps), batch_size):
            x = to_model[steps.slice(start, start + batch_size).padded(max_len)]
            rows = len(x)
            if rows < batch_size:
                x = np.concatenate([x, np.zeros((batch_size - rows, max_len), np.int32)])
            s = np.asarray(logits(x), dtype=np.float32)[:rows]
            if not same:
                s, raw = s[:, np.maximum(cols, 0)], s
                if unseen.any():
                    s[:, unseen] = raw.min(axis=1, keepdims=True)
            out.append(s)
        if len(out) == 1:  # one batch (the score job's): no copy of [batch, catalog]
            return out[0]
        return np.concatenate(out) if out else np.zeros((0, len(ids)), np.float32)
    return score


class ItemCachedScorer:
    """A trained ranker split at x0, for serving: the item-side encoders (category, brand,
    title words) run once per vocabulary item of the context they first meet, the numeric
    encoder per candidate, and only the cross and deep layers per candidate. Same logits as
    the whole model (the layers are the same), without re-reading strings per candidate.
    An averaged ranker (`training.ranker.average`) is split member by member and its
    members' logits averaged, as its `members_mean` layer does.

    Per candidate, every member's numeric encoder, item parts gathered from its per-item
    tables, x0, cross and deep layers and the average run as one XLA-compiled function
    over chunks of `CHUNK` candidates and the rest in chunks of `TAIL` (the last one
    padded): compiled twice per process and context. The item tables are captured by the
    function, not passed to it, so a call converts and checks two arrays only (passing
    them cost about 2 ms of Python per call)."""

    CHUNK, TAIL = 8_192, 1_024

    def __init__(self, model: keras.Model):
        members = [layer for layer in model.layers if isinstance(layer, keras.Model)]
        self.members = [_Member(m) for m in members or [model]]
        self.width = self.members[0].width
        self._ctx, self._logits = None, None

    def _function(self, ctx):
        """The compiled per-candidate logits for `ctx`'s items (made once per context)."""
        if self._ctx is not ctx:
            import tensorflow as tf

            tables = [m.item_tables(ctx) for m in self.members]
            members = self.members

            def logits(values, items):
                total = None
                for member, own in zip(members, tables):
                    out = member.logits(values, items, own)
                    total = out if total is None else total + out
                return total / len(members) if len(members) > 1 else total

            self._logits = tf.function(logits, jit_compile=True)
            self._ctx = ctx
        return self._logits

    def __call__(self, ctx, cands: CandidateSet) -> np.ndarray:
        if not len(cands):
            return np.zeros(0, np.float32)
        logits = self._function(ctx)
        n = len(cands)
        out = np.empty(n, np.float32)
        numeric = np.ascontiguousarray(cands.numeric, np.float32)
        items_all = cands.items.astype(np.int32)
        start = 0
        while start < n:  # whole chunks, then the rest in tails (two compiled shapes)
            size = self.CHUNK if n - start >= self.CHUNK else self.TAIL
            values = numeric[start:start + size]
            items = items_all[start:start + size]
            rows = len(items)
            if rows < size:
                values = np.concatenate([values, np.zeros((size - rows, self.width),
                                                          np.float32)])
                items = np.concatenate([items, np.zeros(size - rows, np.int32)])
            out[start:start + rows] = np.asarray(logits(values, items))[:rows]
            start += rows
        return out


class _Member:
    """One DCN split at x0 (see `ItemCachedScorer`): its item parts per vocabulary item, and
    its logits per candidate from the numeric values, the items and those tables."""

    def __init__(self, model: keras.Model):
        x0 = model.get_layer("x0")
        self.parts = keras.Model(model.input, x0.input)
        self.numeric_slots = [_depends_on(t, "numeric") for t in x0.input]
        self.head = keras.Model(x0.output, model.output)
        self.numeric = keras.Model(model.input["numeric"],
                                   [t for t in x0.input if _depends_on(t, "numeric")])
        self.width = int(model.input["numeric"].shape[-1])  # its numeric features

    def item_tables(self, ctx) -> tuple:
        import tensorflow as tf

        n = ctx.size
        outs = self.parts.predict_on_batch({
            "numeric": np.zeros((n, self.width), np.float32),
            "category": ctx.category.astype(str)[:, None],
            "brand": ctx.brand.astype(str)[:, None],
            "title": ctx.title.astype(str)[:, None]})
        return tuple(tf.constant(np.asarray(o, np.float32))
                     for o, num in zip(outs, self.numeric_slots) if not num)

    def logits(self, values, items, tables):
        import tensorflow as tf

        encoded = self.numeric(values, training=False)
        encoded = iter(encoded if isinstance(encoded, (list, tuple)) else [encoded])
        tables = iter(tables)
        x = tf.concat([next(encoded) if num else tf.gather(next(tables), items)
                       for num in self.numeric_slots], axis=1)
        return tf.reshape(self.head(x, training=False), [-1])


def _depends_on(tensor, input_name: str) -> bool:
    """Does a functional model's intermediate tensor depend on the input named so?"""
    todo, seen = [tensor], set()
    while todo:
        t = todo.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        history = getattr(t, "_keras_history", None)
        if history is None:
            continue
        layer = history.operation
        if isinstance(layer, layers.InputLayer):
            if layer.name == input_name:
                return True
            continue
        node = layer._inbound_nodes[history.node_index]
        todo.extend(node.input_tensors)
    return False


def top_lists(model, ctx, steps, sasrec, sizes: dict[str, int], k: int,
              features: tuple[str, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """([n, k] items, [n, k] logits): the ranker's top-k over each user's candidates
    (`model` a Keras ranker or an `ItemCachedScorer`), its numeric input the columns
    `features` names (the ones it was trained on; all of `NUMERIC` by default)."""
    cands = generate(ctx, steps, sasrec, sizes)
    if features is not None and tuple(features) != tuple(NUMERIC):
        cands = cands.with_features(features)
    scores = (model(ctx, cands) if isinstance(model, ItemCachedScorer)
              else ranker.predict(model, cands))
    return lists.from_pairs(len(steps), cands.rows, cands.items, scores, k)
