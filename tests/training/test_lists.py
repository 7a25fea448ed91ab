"""Top-K lists, their filling, and metrics streamed over batches and merged."""

import numpy as np
import pytest

from tests.training.shop import AT, CATALOG, SEQS, VOCAB, WEIGHTS, context_of, steps
from training import context, lists
from training.evaluate import Evaluation


def test_dense_scores_give_masked_top_k_best_first():
    ctx = context_of()
    scores = np.tile(np.arange(len(VOCAB), dtype=np.float32), (3, 1))  # e (6) scores best
    ranked, s = lists.from_dense(ctx, SEQS, scores, 3)
    # e is unavailable; u2 bought c (not repurchasable); u1 bought b (repurchasable)
    assert VOCAB[ranked[0]].tolist() == ["d", "c", "b"]
    assert VOCAB[ranked[1]].tolist() == ["d", "b", "a"]
    assert (np.diff(s, axis=1) <= 0).all()


def test_short_lists_are_filled_from_the_fallback_without_repeats():
    ranked = np.array([[5, -1, -1], [-1, -1, -1]])
    scores = np.array([[2.0, -1e9, -1e9], [-1e9] * 3], np.float32)
    fallback = np.array([[5, 2, 3], [4, 2, 3]])
    out, out_scores = lists.fill(ranked, scores, fallback, np.zeros((2, 3), np.float32))
    assert out.tolist() == [[5, 2, 3], [4, 2, 3]]
    assert (np.diff(out_scores, axis=1) < 0).all() and out_scores[0, 0] == 2.0


def test_metrics_summed_over_batches_and_merged_equal_one_pass():
    users = [f"u{i}" for i in range(6)]
    items = [["a", "b", "c"], ["a", "c"], ["d", "b"], ["b", "c", "a"], ["a", "d"], ["c", "b"]]
    seqs = steps(users, items, [["view"] * len(i) for i in items],
                 [list(range(1, len(i) + 1)) for i in items], [[]] * 6)
    ctx = context_of(seqs)
    after = steps(users, [["b"], ["d"], ["a", "c"], ["d"], ["b", "c"], ["zz"]],
                  [["view"], ["view"], ["view", "view"], ["view"], ["view", "view"], ["view"]],
                  [[10], [10], [10, 10], [10], [10, 10], [10]], [[]] * 6)
    ranked = lists.fill(*lists.covisited(ctx, seqs, 3), *lists.popular(ctx, seqs, 3))[0]
    whole = Evaluation(ctx, [1, 3])
    whole.add("knn", ranked, seqs, after)
    halves = [Evaluation(ctx, [1, 3]) for _ in range(2)]
    for h, rows in zip(halves, (np.arange(3), np.arange(3, 6))):
        h.add("knn", ranked[rows], seqs.take(rows), after.take(rows))
    merged = Evaluation(ctx, [1, 3]).merge(halves[0].rows()).merge(halves[1].rows())
    assert merged.report("knn") == pytest.approx(whole.report("knn"))
    assert whole.report("knn")["users"] == 5  # u5 only touched an unknown item


def test_negative_sampling_is_deterministic_and_near_its_rate():
    from training.partitions import sampled

    users = np.array([f"u{i % 500}" for i in range(20000)], dtype=object)
    items = np.arange(20000) % 97
    a, b = sampled(users, items, 0.25), sampled(users, items, 0.25)
    assert (a == b).all() and abs(a.mean() - 0.25) < 0.02
    assert sampled(users, items, 1.0).all()


def test_buy_again_ranks_own_purchases_by_frequency_and_recency_under_the_masks():
    # u1 bought a on days 1 and 2 (each purchase counts 0.5^(age / 30 days)) and d once on
    # day 9; u2 bought c; u3 bought nothing. Only a is rebought, so d and c stay out inside
    # the exclusion window
    seqs = steps(["u1", "u2", "u3"], [["a", "a", "d", "b"], ["c", "a"], ["d"]],
                 [["purchase", "purchase", "purchase", "view"], ["purchase", "view"],
                  ["view"]], [[1, 2, 9, 9], [3, 4], [5]], [["a", "d"], ["c"], []])
    ctx = context.build(seqs, AT, VOCAB, CATALOG, WEIGHTS, 7, context_of(seqs).sim,
                        context.Repurchase(min_share=0.5, min_buyers=1))
    flags = dict(zip(VOCAB, ctx.repurchasable))
    assert flags["a"] and not flags["d"]  # a rebought by its one buyer: learned; d once
    ranked, scores = lists.buy_again(ctx, seqs, 3)
    # d was bought inside the exclusion window and is not rebought: masked
    assert VOCAB[ranked[0][ranked[0] >= 0]].tolist() == ["a"]
    assert scores[0][0] == pytest.approx(0.5 ** (8.5 / 30) + 0.5 ** (7.5 / 30), rel=1e-5)
    assert (ranked[1] == -1).all() and (ranked[2] == -1).all()
    filled = lists.fill(ranked, scores, *lists.popular(ctx, seqs, 3))[0]
    assert (filled >= 0).all() and VOCAB[filled[1]].tolist().count("c") == 0
