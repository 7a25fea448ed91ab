"""Reasons given with each recommended item."""

import numpy as np

from training import inputs
from training.score import reasons

CATALOG = inputs.Catalog(item_ids=["a", "b", "c"], title={"a": "Mug A", "b": "Mug B", "c": "Cap"},
                         category={"a": "Home", "b": "Home", "c": "Sports"},
                         available={"a", "b", "c"}, repurchasable=set())
VOCAB = ["", "[UNK]", "a", "b", "c"]
INDEX = {v: i for i, v in enumerate(VOCAB)}
SIM = np.array([[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 1, .8, 0],
                [0, 0, .8, 1, 0], [0, 0, 0, 0, 1]], dtype=float)


def sim(recs, hist):
    return SIM[recs][:, hist]


def test_reasons_name_the_most_similar_recent_item_or_fall_back_to_the_category():
    got = reasons(np.array([3, 2, 4]), ["a"], ["purchase"], VOCAB, INDEX, sim, CATALOG)
    assert got == ['similar to "Mug A" you bought', "you bought it recently", "more from Sports"]


def test_without_history_or_similarity_the_reason_is_popularity():
    assert reasons(np.array([4]), [], [], VOCAB, INDEX, sim, CATALOG) == ["popular in Sports"]
    assert reasons(np.array([2]), ["a"], ["view"], VOCAB, INDEX, None, CATALOG) == [
        "popular in Home"]
