"""The champion/challenger rule."""

import numpy as np

from tests.training.shop import AT, WEIGHTS, steps
from training import context, lists
from training.baselines import ItemKNN
from training.context import Catalog
from training.evaluate import Evaluation
from training.gate import decide
from training.inputs import OOV, PAD

BASE = {"popularity": {"ndcg@10": 0.10}}


def test_keeps_the_champion_when_the_challenger_is_worse():
    ok, why = decide("ndcg@10", {"ndcg@10": 0.15}, BASE, {"ndcg@10": 0.20}, tolerance=0.01)
    assert not ok and "worse than the champion" in why


def test_rejects_a_challenger_that_does_not_beat_the_best_baseline():
    baselines = {**BASE, "item_knn": {"ndcg@10": 0.30}}
    ok, why = decide("ndcg@10", {"ndcg@10": 0.25}, baselines, None, tolerance=0.01)
    assert not ok and "item_knn" in why


def test_promotes_within_tolerance_and_without_champion():
    assert decide("ndcg@10", {"ndcg@10": 0.195}, BASE, {"ndcg@10": 0.20}, tolerance=0.01)[0]
    assert decide("ndcg@10", {"ndcg@10": 0.12}, BASE, None, tolerance=0.01)[0]


def test_without_a_champion_the_best_servable_baseline_serves():
    from training.gate import fallback_baseline

    baselines = {"popularity": {"ndcg@10": 0.1}, "item_knn": {"ndcg@10": 0.2},
                 "als": {"ndcg@10": 0.3}}  # ALS is not servable by scoring
    assert fallback_baseline(baselines, "ndcg@10") == "item_knn"


def test_a_challenger_whose_lists_collapse_is_refused_even_with_the_best_metric():
    """Every user gets the same three items, which is what most of them came back for: the
    best NDCG of the night, measured by the real evaluation, and still refused, by name."""
    items = [f"i{k:03d}" for k in range(200)]
    vocab = np.array([PAD, OOV] + items, dtype=object)
    catalog = Catalog(item_ids=items, title={i: i for i in items},
                      category={i: f"c{k % 7}" for k, i in enumerate(items)},
                      available=set(items), repurchasable=set(), brand={i: "b" for i in items},
                      price={i: 1.0 for i in items})
    rng = np.random.default_rng(0)
    users = [f"u{k:03d}" for k in range(100)]
    history = [list(rng.choice(items[3:], 4, replace=False)) for _ in users]
    came_back = [[items[k % 3]] if k % 4 else [str(rng.choice(items[3:]))]
                 for k in range(len(users))]
    before = steps(users, history, [["view"] * 4] * 100, [[1, 2, 3, 4]] * 100, [[]] * 100,
                   vocab)
    after = steps(users, came_back, [["purchase"]] * 100, [[11]] * 100, [[]] * 100, vocab)
    ctx = context.build(before, AT, vocab, catalog, WEIGHTS, 7, ItemKNN(len(vocab)).fit([]).sim)
    ev = Evaluation(ctx, [10, 20])
    same = np.tile(np.array([2, 3, 4] + [-1] * 17), (100, 1))  # i000, i001, i002
    ev.add("ranker", same, before, after)
    spread = lists.fill(*lists.popular(ctx, before, 20), *lists.popular(ctx, before, 20))[0]
    ev.add("popularity", spread, before, after)
    reports = ev.reports()
    assert reports["ranker"]["ndcg@10"] > reports["popularity"]["ndcg@10"]
    assert reports["ranker"]["distinct_items"] == 3
    ok, why = decide("ndcg@10", reports["ranker"], {"popularity": reports["popularity"]}, None,
                     tolerance=0.002, min_coverage=0.02)
    assert not ok
    assert "collapse" in why and "3 distinct items" in why and "floor 2%" in why
