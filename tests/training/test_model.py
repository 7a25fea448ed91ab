"""Model tests: the loss goes down on a small table, scoring takes strings, the split is by time."""

from datetime import datetime, timezone

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from training import fit, inputs  # noqa: E402
from training.model import build_sasrec, item_vocabulary, scoring_model  # noqa: E402


def _cyclic_sequences(n_users=500, n_items=30, length=12, seed=0):
    """Each user walks the items in order from a random start: next item = current + 1."""
    rng = np.random.default_rng(seed)
    items = [f"I{i}" for i in range(n_items)]
    seqs = inputs.Sequences([], [], [], [], [])
    for u in range(n_users):
        start = int(rng.integers(n_items))
        seqs.users.append(f"U{u}")
        seqs.items.append([items[(start + k) % n_items] for k in range(length)])
        seqs.types.append(["view"] * length)
        seqs.times.append(np.arange(length).astype("datetime64[D]").astype("datetime64[us]"))
        seqs.recent_purchases.append([])
    return seqs, items


def test_loss_goes_down_and_the_pattern_is_learned():
    seqs, items = _cyclic_sequences()
    vocab = [inputs.PAD, inputs.OOV] + items
    index = {v: i for i, v in enumerate(vocab)}
    x, y, w = inputs.next_item_arrays(seqs, index, max_len=10, weights={"view": 1.0})
    assert x.shape == (500, 10) and (w[y <= 1] == 0).all()
    model = build_sasrec(len(vocab), 10, dim=32, blocks=1, heads=2, dropout=0.0)
    hist = fit.train(model, x, y, w, epochs=8, batch_size=64, learning_rate=0.01, seed=0)
    losses = hist["loss"]
    assert losses[-1] < 0.5 * losses[0]
    scorer = scoring_model(model, items)
    logits = np.asarray(scorer.predict_on_batch(np.array([[""] * 8 + ["I3", "I4"]])))
    assert [str(v) for v in item_vocabulary(scorer)][int(logits.argmax())] == "I5"


def test_holdout_cuts_at_the_split_and_remembers_recent_purchases():
    t = lambda d: np.datetime64(f"2026-11-{d:02d}T12:00", "us")  # noqa: E731
    seqs = inputs.Sequences(
        ["u1", "u2", "u3"],
        [["a", "b", "c"], ["a"], ["z"]],
        [["purchase", "view", "view"], ["view"], ["view"]],
        [np.array([t(20), t(21), t(22)]), np.array([t(20)]), np.array([t(22)])],
        [[], [], []])
    split = datetime(2026, 11, 22, tzinfo=timezone.utc)
    before, hold = inputs.holdout(seqs, split, exclusion_days=30)
    assert before.users == ["u1", "u2"]  # u3 has no history before the split
    assert before.items[0] == ["a", "b"]
    assert hold.users == ["u1"] and hold.targets == [{"c"}]
    assert hold.bought_before == [{"a"}]


def test_two_row_loss_matches_a_hand_worked_value():
    """Two positions, vocabulary of three, embeddings the identity-like rows below."""
    import math

    import tensorflow as tf

    hidden = tf.constant([[1.0, 0.0], [0.0, 2.0]])
    emb = tf.constant([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # logits: row 1 = [0, 1, 0], row 2 = [0, 0, 2]; targets 1 and 0; weights 1 and 3
    loss = fit.weighted_softmax_loss(hidden, emb, tf.constant([1, 0]), tf.constant([1.0, 3.0]))
    ce1 = -math.log(math.e / (2 + math.e))
    ce2 = -math.log(1 / (2 + math.e ** 2))
    assert float(loss) == pytest.approx((1 * ce1 + 3 * ce2) / 4, rel=1e-6)


def test_sampled_loss_with_every_item_as_negative_equals_the_full_loss():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    hidden = tf.constant(rng.normal(size=(4, 3)), tf.float32)
    emb = tf.constant(rng.normal(size=(5, 3)), tf.float32)
    targets, weights = tf.constant([1, 4, 2, 4]), tf.constant([1.0, 2.0, 1.0, 5.0])
    full = fit.weighted_softmax_loss(hidden, emb, targets, weights)
    # a constant log q shifts every logit alike; the target among the negatives is masked
    sampled = fit.sampled_softmax_loss(hidden, emb, targets, weights, tf.range(5),
                                       tf.fill([5], 0.7))
    assert float(sampled) == pytest.approx(float(full), rel=1e-5)


def test_negative_sampler_never_draws_padding_and_follows_popularity():
    y = np.array([[0, 2, 2, 2, 3], [0, 0, 2, 3, 4]])
    sampler = fit.NegativeSampler(y, vocab_size=6, count=2000, alpha=1.0, seed=0)
    draws = sampler.draw()
    assert set(draws) <= {2, 3, 4}
    assert (draws == 2).mean() > (draws == 4).mean()
    assert sampler.log_q[2] == pytest.approx(np.log(2000 * 4 / 7))
