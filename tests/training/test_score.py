"""Reasons given with each recommended item."""

import numpy as np

from training import inputs
from training.score import reasons

CATALOG = inputs.Catalog(item_ids=["a", "b", "c"], title={"a": "Mug A", "b": "Mug B", "c": "Cap"},
                         category={"a": "Home", "b": "Home", "c": "Sports"},
                         available={"a", "b", "c"}, repurchasable=set(),
                         brand={"a": "Acme", "b": "Acme", "c": "Zed"},
                         price={"a": 9.0, "b": 12.0, "c": 20.0})
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


def test_an_item_the_user_touched_is_named_as_such_even_when_it_is_like_nothing_else():
    zero = lambda recs, hist: np.zeros((len(recs), len(hist)))  # noqa: E731
    got = reasons(np.array([4, 2]), ["a", "c", "b"], ["view", "favorite", "view"], VOCAB, INDEX,
                  zero, CATALOG)
    assert got == ["you saved it recently", "you viewed it recently"]
