"""The champion/challenger rule."""

from training.gate import decide

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
