"""The ranker: DCN-v2 (Wang et al., 2021) over the candidates' features.

`build_dcn` wires parts it is given: one encoder per input (numbers normalised, category and
brand embedded, the title's words embedded and averaged), a stack of cross layers, a deep
MLP and a head. The cross layers learn explicit feature crosses (x0 * (W x + b) + x), which
is what lets "the user's taste for this category" meet "this item's category" without the
MLP having to discover the product; the MLP on top learns the rest.

`default_parts` builds the parts from `RankerConfig`, adapted on the training rows, so the
vocabularies and normalisation travel inside the saved model: strings and raw numbers in,
a logit out.
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Callable

import keras
import numpy as np
from keras import layers, ops

from training.candidate_set import NUMERIC, CandidateSet

log = logging.getLogger(__name__)


@keras.saving.register_keras_serializable(package="nightshelf")
class CrossLayer(layers.Layer):
    """One DCN-v2 cross: x_{l+1} = x0 * (W x_l + b) + x_l, W optionally low-rank (U V)."""

    def __init__(self, rank: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rank = rank

    def build(self, input_shape):
        d = input_shape[0][-1]
        if self.rank:
            self.u = self.add_weight(shape=(d, self.rank), initializer="glorot_uniform",
                                     name="u")
            self.v = self.add_weight(shape=(self.rank, d), initializer="glorot_uniform",
                                     name="v")
        else:
            self.w = self.add_weight(shape=(d, d), initializer="glorot_uniform", name="w")
        self.b = self.add_weight(shape=(d,), initializer="zeros", name="b")

    def call(self, inputs):
        x0, x = inputs
        wx = ops.matmul(ops.matmul(x, self.u), self.v) if self.rank else ops.matmul(x, self.w)
        return x0 * (wx + self.b) + x

    def get_config(self):
        return {**super().get_config(), "rank": self.rank}


def build_dcn(inputs: dict[str, keras.Input], encoders: dict[str, Callable],
              cross: list[CrossLayer], deep: list[layers.Layer], head: layers.Layer,
              name: str = "dcn_ranker") -> keras.Model:
    """A DCN-v2 ("stacked": cross layers, then the deep layers) from the parts passed in.

    `encoders[name]` maps `inputs[name]` to a [batch, d] tensor; their concatenation is x0.
    """
    x0 = layers.Concatenate(name="x0")([encoders[k](inputs[k]) for k in sorted(inputs)])
    x = x0
    for layer in cross:
        x = layer([x0, x])
    for layer in deep:
        x = layer(x)
    return keras.Model(inputs, head(x), name=name)


def model_inputs(width: int) -> dict[str, keras.Input]:
    """The ranker's inputs: `width` numbers and the item's category, brand and title."""
    return {"numeric": keras.Input(shape=(width,), dtype="float32", name="numeric"),
            "category": keras.Input(shape=(1,), dtype="string", name="category"),
            "brand": keras.Input(shape=(1,), dtype="string", name="brand"),
            "title": keras.Input(shape=(1,), dtype="string", name="title")}


def default_parts(train: CandidateSet, cfg) -> tuple[dict, dict, list, list, layers.Layer]:
    """Inputs, encoders (adapted on `train`), cross, deep and head layers from RankerConfig."""
    d = cfg.embedding_dim
    inputs = model_inputs(train.numeric.shape[1])  # NUMERIC's columns (or a test's)
    # normalised by the training rows' mean and variance; a feature constant in them (a flag
    # no training row sets) keeps unit scale, so a row that sets it later gets a bounded
    # input instead of one divided by ~0 (which sent validation losses to ~100)
    mean = train.numeric.astype(np.float64).mean(axis=0)
    var = train.numeric.astype(np.float64).var(axis=0)
    norm = layers.Normalization(mean=mean, variance=np.where(var < 1e-6, 1.0, var),
                                name="numeric_norm")

    def lookup(name: str, values: np.ndarray) -> Callable:
        vocab = sorted({str(v) for v in values if v})
        lk = layers.StringLookup(vocabulary=vocab or ["?"], name=f"{name}_lookup")
        emb = layers.Embedding(lk.vocabulary_size(), d, name=f"{name}_embedding")
        flat = layers.Flatten(name=f"{name}_flat")
        return lambda t: flat(emb(lk(t)))

    words = layers.TextVectorization(max_tokens=cfg.title_tokens, output_sequence_length=12,
                                     name="title_words")
    words.adapt(np.unique(train.title))
    word_emb = layers.Embedding(words.vocabulary_size(), d, mask_zero=True,
                                name="title_embedding")
    pool = layers.GlobalAveragePooling1D(name="title_mean")
    squeeze = layers.Reshape((), name="title_flat")
    encoders = {"numeric": norm, "category": lookup("category", train.category),
                "brand": lookup("brand", train.brand),
                "title": lambda t: pool(word_emb(words(squeeze(t))))}
    cross = [CrossLayer(name=f"cross_{i}") for i in range(cfg.cross_layers)]
    deep = []
    for i, units in enumerate(cfg.deep):
        deep += [layers.Dense(units, activation="relu", name=f"deep_{i}"),
                 layers.Dropout(cfg.dropout, name=f"deep_dropout_{i}")]
    return inputs, encoders, cross, deep, layers.Dense(1, name="logit")


def _dataset(cands: CandidateSet, y=None, w=None, batch_size: int = 1024, shuffle_seed=None):
    import tensorflow as tf

    x = cands.inputs()
    ds = tf.data.Dataset.from_tensor_slices(x if y is None else (x, y, w))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(cands), seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(2)


def _compile_and_fit(model: keras.Model, train, val, cfg,
                     on_epoch: Callable[[int, dict], None] | None,
                     minutes: float | None = None) -> dict:
    """Adam on the weighted binary cross-entropy; early stopping on the validation loss
    (best weights kept), and stopping after `minutes` (default `cfg.max_train_minutes`)."""
    if minutes is None:
        minutes = getattr(cfg, "max_train_minutes", float("inf"))
    deadline = time.monotonic() + 60 * minutes

    def out_of_time(epoch, logs):
        if time.monotonic() > deadline:
            log.warning("ranker: time budget reached after epoch %d", epoch + 1)
            model.stop_training = True

    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  weighted_metrics=[keras.metrics.AUC(from_logits=True, name="auc")])
    callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience,
                                               restore_best_weights=True),
                 keras.callbacks.LambdaCallback(on_epoch_end=out_of_time)]
    if on_epoch is not None:
        callbacks.append(keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: on_epoch(epoch + 1, logs)))
    hist = model.fit(train, validation_data=val, epochs=cfg.epochs, callbacks=callbacks,
                     shuffle=False, verbose=0)
    return {k: [float(x) for x in v] for k, v in hist.history.items()}


def average(members: list[keras.Model], width: int, name: str = "dcn_ranker") -> keras.Model:
    """One model whose logit is the mean of the members' logits (a seed ensemble): saved,
    registered and served as one model, strings and raw numbers in, a logit out."""
    if len(members) == 1:
        return members[0]
    inputs = model_inputs(width)
    return keras.Model(inputs, layers.Average(name="members_mean")([m(inputs) for m in members]),
                       name=name)


def fit_members(build: Callable[[str], keras.Model], fit_one: Callable, cfg, width: int,
                on_epoch: Callable[[int, dict], None] | None = None
                ) -> tuple[keras.Model, dict]:
    """Train up to `cfg.members` rankers one after another, each from its own initialisation
    and shuffle (`build(name)` makes one, `fit_one(model, on_epoch, minutes)` trains it),
    and average them (`average`). On the launches shop's 11-20 night, over five seeds
    (`bench/ranker_seeds.py`), three members lifted the holdout NDCG@10 from 0.1987 to
    0.2096 on average; the spread from seed to seed stayed (0.003-0.005, and 0.015-0.017 on
    the cold-item slice).

    The first member has all of `cfg.max_train_minutes`; another starts only while the time
    left covers the longest member so far, and gets its share of what is left. So a shop
    whose ranker converges well inside the budget gets the ensemble, and one whose first
    member needs the whole budget gets that one model, trained as long as before.

    The history holds every member's epochs in order, with `member` (0-based) per epoch;
    `on_epoch` gets the running epoch count and `member` among the logs."""
    n = max(1, int(getattr(cfg, "members", 1)))
    deadline = time.monotonic() + 60 * getattr(cfg, "max_train_minutes", float("inf"))
    members, history, longest = [], {"member": []}, 0.0
    for k in range(n):
        left = deadline - time.monotonic()
        if k and left < longest:
            log.info("ranker: %d of %d members (%.0fs left, a member takes %.0fs)", k, n,
                     max(left, 0), longest)
            break
        model = build(f"dcn_member_{k}" if n > 1 else "dcn_ranker")

        def member_epoch(epoch: int, logs: dict, k=k, before=len(history["member"])) -> None:
            if on_epoch is not None:
                on_epoch(before + epoch, {**logs, "member": k})

        t0 = time.monotonic()
        h = fit_one(model, member_epoch, max(left, 0) / 60 / (n - k if k else 1))
        took = time.monotonic() - t0
        longest = max(longest, took)
        epochs = len(h.get("loss", []))
        for key, values in h.items():
            history.setdefault(key, []).extend(values)
        history["member"].extend([float(k)] * epochs)
        members.append(model)
        if n > 1:
            log.info("ranker member %d/%d: %d epochs in %.0fs, best val_loss %.4f", k + 1, n,
                     epochs, took, min(h.get("val_loss", [float("nan")])))
    return average(members, width), history


def fit(train: CandidateSet, y: np.ndarray, w: np.ndarray, cfg, seed: int,
        on_epoch: Callable[[int, dict], None] | None = None) -> tuple[keras.Model, dict]:
    """Fit the ranker on labelled candidates in memory; 10% of the users held out for early
    stopping; `cfg.members` members averaged (`fit_members`)."""
    users = np.unique(train.rows)
    rng = np.random.default_rng(seed)
    val_users = rng.choice(users, size=max(1, len(users) // 10), replace=False)
    is_val = np.isin(train.rows, val_users)
    tr, va = train.select(~is_val), train.select(is_val)
    val = _dataset(va, y[is_val], w[is_val], cfg.batch_size)

    def fit_one(model, member_epoch, minutes):
        data = _dataset(tr, y[~is_val], w[~is_val], cfg.batch_size,
                        shuffle_seed=int(rng.integers(2**31)))
        return _compile_and_fit(model, data, val, cfg, member_epoch, minutes)

    return fit_members(lambda name: build_dcn(*default_parts(tr, cfg), name=name), fit_one,
                       cfg, train.numeric.shape[1], on_epoch)


ADAPT_ROWS = 200_000     # rows the encoders are adapted on (normalisation, vocabularies)
SHUFFLE_ROWS = 65_536    # rows shuffled together while streaming


def is_validation(users: np.ndarray) -> np.ndarray:
    """10% of the users, by a hash of their id: all of a user's rows on the same side."""
    import pandas as pd

    return pd.util.hash_array(np.asarray(users, dtype=object)) % np.uint64(10) == 0


def from_rows(table) -> tuple[CandidateSet, np.ndarray, np.ndarray, np.ndarray]:
    """(candidates, labels, weights, user ids) of a batch of training rows (pyarrow)."""
    numeric = np.stack([table.column(n).to_numpy(zero_copy_only=False) for n in NUMERIC],
                       axis=1).astype(np.float32)
    strings = {c: np.asarray(table.column(c).to_pylist(), dtype=object).astype(str)
               for c in ("category", "brand", "title")}
    users = np.asarray(table.column("user_id").to_pylist(), dtype=object)
    n = len(users)
    cands = CandidateSet(rows=np.zeros(n, np.int64), items=np.zeros(n, np.int64),
                         numeric=numeric, **strings)
    return (cands, table.column("label").to_numpy().astype(np.float32),
            table.column("weight").to_numpy().astype(np.float32), users)


def fit_stream(path, cfg, seed: int,
               on_epoch: Callable[[int, dict], None] | None = None) -> tuple[keras.Model, dict]:
    """Fit the ranker on the training rows the Spark job wrote under `path` (Parquet),
    streamed into Keras in shuffled batches: memory holds `SHUFFLE_ROWS` rows, whatever the
    number of rows. The encoders are adapted on the first `ADAPT_ROWS` rows; the users
    `is_validation` picks are held out for early stopping."""
    import pyarrow.dataset as pads
    import tensorflow as tf

    data = pads.dataset(str(path), format="parquet")
    adapt = from_rows(data.head(ADAPT_ROWS))[0]
    fragments = list(data.get_fragments())
    rng = np.random.default_rng(seed)

    def batches(val: bool):
        def gen():
            order = range(len(fragments)) if val else rng.permutation(len(fragments))
            for f in order:
                for rb in fragments[f].to_batches(batch_size=SHUFFLE_ROWS):
                    cands, y, w, users = from_rows(rb)
                    keep = np.nonzero(is_validation(users) == val)[0]
                    if not val:
                        keep = rng.permutation(keep)
                    for s in range(0, len(keep), cfg.batch_size):
                        b = keep[s:s + cfg.batch_size]
                        yield cands.select(b).inputs(), y[b], w[b]
        return gen

    spec = ({"numeric": tf.TensorSpec((None, len(NUMERIC)), tf.float32),
             "category": tf.TensorSpec((None, 1), tf.string),
             "brand": tf.TensorSpec((None, 1), tf.string),
             "title": tf.TensorSpec((None, 1), tf.string)},
            tf.TensorSpec((None,), tf.float32), tf.TensorSpec((None,), tf.float32))
    train = tf.data.Dataset.from_generator(batches(False), output_signature=spec).prefetch(2)
    val = tf.data.Dataset.from_generator(batches(True), output_signature=spec).prefetch(2)
    with warnings.catch_warnings():  # a stream's length is unknown: every epoch "runs out"
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        return fit_members(lambda name: build_dcn(*default_parts(adapt, cfg), name=name),
                           lambda model, member_epoch, minutes: _compile_and_fit(
                               model, train, val, cfg, member_epoch, minutes),
                           cfg, len(NUMERIC), on_epoch)


def predict(model: keras.Model, cands: CandidateSet, batch_size: int = 65_536) -> np.ndarray:
    """The ranker's logit for every candidate, `batch_size` rows per call of the model."""
    if not len(cands):
        return np.zeros(0, np.float32)
    out = []
    for start in range(0, len(cands), batch_size):
        part = cands.select(np.arange(start, min(start + batch_size, len(cands))))
        out.append(np.asarray(model.predict_on_batch(part.inputs()), np.float32).reshape(-1))
    return np.concatenate(out)
