"""Metrics against values worked out by hand on a toy ranking."""

import math

import numpy as np
import pytest

from training import metrics

RANKED = np.array([[1, 2, 3], [4, 5, 6]])
RELEVANT = [{2, 9}, {7}]  # user 1: hit at rank 2 of 2 relevant; user 2: nothing found


def test_hand_worked_values():
    rep = metrics.ranking_report(RANKED, RELEVANT, [1, 3])
    assert rep["hr@1"] == 0.0 and rep["hr@3"] == 0.5
    assert rep["recall@3"] == pytest.approx((1 / 2 + 0) / 2)
    idcg = 1 + 1 / math.log2(3)
    assert rep["ndcg@3"] == pytest.approx((1 / math.log2(3)) / idcg / 2)
    assert rep["map@3"] == pytest.approx((0.5 / 2) / 2)
    assert rep["mrr"] == pytest.approx(0.25)
    assert rep["users"] == 2


def test_perfect_list_scores_one():
    rep = metrics.ranking_report(np.array([[7, 8, 1]]), [{7, 8}], [2])
    assert rep["ndcg@2"] == rep["recall@2"] == rep["map@2"] == rep["hr@2"] == 1.0


def test_top_k_orders_by_score_and_breaks_ties_by_index():
    scores = np.array([[0.1, 0.9, 0.5, 0.9], [3.0, 2.0, 1.0, 0.0]])
    assert metrics.top_k(scores, 3).tolist() == [[1, 3, 2], [0, 1, 2]]


def test_k_longer_than_list_is_an_error():
    with pytest.raises(ValueError, match="longer than the ranked lists"):
        metrics.ranking_report(RANKED, RELEVANT, [5])


def test_novelty_and_intra_list_diversity_by_hand():
    ranked = np.array([[0, 1], [1, 2]])
    share = np.array([0.5, 0.25, 1.0])
    # user 1: -log2 .5 = 1, -log2 .25 = 2; user 2: 2, 0 -> mean 5/4
    assert metrics.novelty(ranked, share, 2) == pytest.approx(1.25)
    groups = np.array(["a", "a", "b"])
    # user 1: both "a" -> 0; user 2: "a" and "b" -> 1
    assert metrics.intra_list_diversity(ranked, groups, 2) == pytest.approx(0.5)
