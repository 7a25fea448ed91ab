"""The SASRec training loop: full-softmax cross-entropy at the real positions only.

Keras' `fit` on per-position logits would build a [batch, max_len, catalogue] tensor, most
of it padding; on a 12k-item catalogue that is the whole cost of an epoch. Here the hidden
states of the non-padded positions are gathered first, then scored against the whole
catalogue, so an epoch costs (real positions x catalogue) instead.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

import numpy as np

log = logging.getLogger(__name__)


def weighted_softmax_loss(hidden, embeddings, targets, weights):
    """Mean over positions of weight * cross-entropy(hidden @ embeddings^T, target).

    hidden [n, d], embeddings [vocab, d], targets [n] ints, weights [n]. Normalised by the
    sum of the weights, so a purchase counts as much as its weight in views.
    """
    import tensorflow as tf

    logits = tf.matmul(hidden, embeddings, transpose_b=True)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
    return tf.reduce_sum(ce * weights) / tf.maximum(tf.reduce_sum(weights), 1e-9)


def sampled_softmax_loss(hidden, embeddings, targets, weights, negatives, log_q):
    """Sampled softmax with logQ correction (Yi et al., 2019), weighted like the full loss.

    Every position is scored against its target and against `negatives` [s], shared by the
    batch and drawn with probabilities q; each logit has log q of its item subtracted, so the
    sampled loss is an unbiased stand-in for the full softmax. A negative that happens to be
    the position's target is masked out. `log_q` [vocab] holds log(s * q(item)).
    """
    import tensorflow as tf

    pos_emb = tf.gather(embeddings, targets)
    pos = tf.reduce_sum(hidden * pos_emb, axis=-1) - tf.gather(log_q, targets)
    neg = tf.matmul(hidden, tf.gather(embeddings, negatives), transpose_b=True)
    neg = neg - tf.gather(log_q, negatives)[None, :]
    hit = tf.equal(targets[:, None], negatives[None, :])
    neg = tf.where(hit, tf.fill(tf.shape(neg), tf.constant(-1e9, neg.dtype)), neg)
    logits = tf.concat([pos[:, None], neg], axis=1)
    ce = -tf.nn.log_softmax(logits, axis=-1)[:, 0]
    return tf.reduce_sum(ce * weights) / tf.maximum(tf.reduce_sum(weights), 1e-9)


class NegativeSampler:
    """Shared negatives for a batch, drawn by popularity ** alpha (alpha 0 is uniform)."""

    def __init__(self, targets: np.ndarray, vocab_size: int, count: int, alpha: float, seed: int):
        freq = np.bincount(targets[targets > 1].ravel(), minlength=vocab_size).astype(float)
        freq[:2] = 0.0  # never sample padding or out-of-vocabulary
        p = np.power(freq, alpha)  # items never seen as a target are never drawn
        self.p = p / p.sum()
        self.count = count
        self.log_q = np.log(np.maximum(self.p * count, 1e-30)).astype(np.float32)
        self.rng = np.random.default_rng(seed)

    def draw(self) -> np.ndarray:
        return self.rng.choice(len(self.p), size=self.count, p=self.p).astype(np.int32)


def make_step(model, optimizer, log_q: np.ndarray | None = None):
    """(train_step, eval_step); with `log_q`, training uses the sampled loss, eval the full."""
    import tensorflow as tf

    log_q_t = None if log_q is None else tf.constant(log_q)

    def loss_of(x, y, w, training, negatives=None):
        emb = model.item_table()  # the item embeddings (and their attributes', if any)
        h = model.encode(x, training=training, table=emb)
        keep = w > 0
        h, t, wt = tf.boolean_mask(h, keep), tf.boolean_mask(y, keep), tf.boolean_mask(w, keep)
        if negatives is None:
            return weighted_softmax_loss(h, emb, t, wt)
        return sampled_softmax_loss(h, emb, t, wt, negatives, log_q_t)

    @tf.function(reduce_retracing=True)
    def train_step(x, y, w, negatives=None):
        with tf.GradientTape() as tape:
            loss = loss_of(x, y, w, True, negatives)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function(reduce_retracing=True)
    def eval_step(x, y, w):
        return loss_of(x, y, w, False), tf.reduce_sum(w)

    return train_step, eval_step


def train(model, x: np.ndarray, y: np.ndarray, w: np.ndarray, *, epochs: int, batch_size: int,
          learning_rate: float, seed: int, validate: Callable[[int], float] | None = None,
          validate_every: int = 1, patience: int = 5, deadline: float | None = None,
          on_epoch: Callable[[int, dict], None] | None = None, negatives: int = 0,
          negative_alpha: float = 0.75, plateau_decay: float = 1.0,
          average_last: int = 0) -> dict:
    """Fit with Adam, shuffling every epoch.

    Every `validate_every` epochs (and at the last one), `validate(epoch)` (higher is better)
    drives early stopping: training stops after `patience` validations without improvement,
    or once `time.monotonic()` passes `deadline`; the best weights are restored.
    `negatives` > 0 trains with the sampled softmax (that many shared negatives per batch,
    drawn by popularity ** `negative_alpha`, logQ-corrected) instead of the full softmax.
    `plateau_decay` < 1 multiplies the learning rate by it after each validation without
    improvement (training goes on from the current weights, at the smaller step).
    `average_last` > 1 also validates, at every validation, the mean of the weights of the
    last that many validated epochs (checkpoint averaging, Vaswani et al. 2017); the better
    of the two counts, and training goes on from the current weights either way.
    Returns the history: {"loss": [per epoch], "val": [per validation]}.
    """
    import keras

    optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    sampler = (NegativeSampler(y, model.vocab_size, negatives, negative_alpha, seed)
               if negatives else None)
    train_step, _ = make_step(model, optimizer, sampler.log_q if sampler else None)
    rng = np.random.default_rng(seed)
    history: dict[str, list[float]] = {"loss": [], "val": []}
    best, best_weights, waited = -np.inf, None, 0
    recent: list[list[np.ndarray]] = []  # the last `average_last` validated weights
    for epoch in range(1, epochs + 1):
        t0 = time.monotonic()
        order = rng.permutation(len(x))
        total, count = 0.0, 0
        for start in range(0, len(order), batch_size):
            b = order[start:start + batch_size]
            negs = (sampler.draw(),) if sampler else ()
            total += float(train_step(x[b], y[b], w[b], *negs)) * len(b)
            count += len(b)
        logs = {"loss": total / max(count, 1), "epoch_seconds": time.monotonic() - t0}
        history["loss"].append(logs["loss"])
        out_of_time = deadline is not None and time.monotonic() > deadline
        if validate is not None and (epoch % validate_every == 0 or epoch == epochs
                                     or out_of_time):
            score, weights = validate(epoch), model.get_weights()
            if average_last > 1:
                recent = (recent + [weights])[-average_last:]
                if len(recent) == average_last:
                    mean = [np.mean(ws, axis=0).astype(ws[0].dtype) for ws in zip(*recent)]
                    model.set_weights(mean)
                    averaged = validate(epoch)
                    model.set_weights(weights)
                    logs["val_averaged"] = averaged
                    if averaged > score:
                        score, weights = averaged, mean
            logs["val"] = score
            history["val"].append(score)
            if score > best:
                best, best_weights, waited = score, weights, 0
            else:
                waited += 1
                if plateau_decay < 1.0:
                    lr = float(optimizer.learning_rate) * plateau_decay
                    optimizer.learning_rate.assign(lr)
                    logs["learning_rate"] = lr
        if on_epoch:
            on_epoch(epoch, logs)
        if validate is not None and waited >= patience:
            log.info("early stop after epoch %d (best val %.4f)", epoch, best)
            break
        if out_of_time:
            log.warning("time budget reached after epoch %d; keeping the best weights", epoch)
            break
    if best_weights is not None:
        model.set_weights(best_weights)
    return history


def validation_loss(eval_step, x: np.ndarray, y: np.ndarray, w: np.ndarray,
                    batch_size: int) -> float:
    """Weighted full-softmax cross-entropy on held-out sequences (lower is better);
    `eval_step` is the second function of `make_step`, built once per model."""
    total, weight = 0.0, 0.0
    for start in range(0, len(x), batch_size):
        sl = slice(start, start + batch_size)
        loss, wsum = eval_step(x[sl], y[sl], w[sl])
        total += float(loss) * float(wsum)
        weight += float(wsum)
    return total / max(weight, 1e-9)
