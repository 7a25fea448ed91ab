"""Reasons given with each recommended item."""

from datetime import datetime

import numpy as np
from scipy import sparse

from tests.training.shop import steps
from training import context
from training.context import Catalog
from training.score import reasons

CATALOG = Catalog(item_ids=["a", "b", "c"], title={"a": "Mug A", "b": "Mug B", "c": "Cap"},
                  category={"a": "Home", "b": "Home", "c": "Sports"},
                  available={"a", "b", "c"}, repurchasable=set(),
                  brand={"a": "Acme", "b": "Acme", "c": "Zed"},
                  price={"a": 9.0, "b": 12.0, "c": 20.0})
VOCAB = np.array(["", "[UNK]", "a", "b", "c"], dtype=object)
AT = datetime(2026, 11, 10)


def _ctx(sim):
    none = steps([], [], [], [], [], vocab=VOCAB)
    return context.build(none, AT, VOCAB, CATALOG, {}, 7, sparse.csr_matrix(sim))


SIM = np.array([[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, .8, 0],
                [0, 0, .8, 0, 0], [0, 0, 0, 0, 0]], dtype=np.float32)


def _user(items, types):
    return steps(["u"], [items], [types], [list(range(1, len(items) + 1))], [[]], vocab=VOCAB)


def test_reasons_name_the_most_similar_recent_item_or_fall_back_to_the_category():
    got = reasons(_ctx(SIM), _user(["a"], ["purchase"]), np.array([[3, 2, 4, -1]]),
                  similar=True)  # padding (-1) gets no row
    assert got.to_pylist() == ['similar to "Mug A" you bought', "you bought it recently",
                               "more from Sports"]


def test_without_history_or_similarity_the_reason_is_popularity():
    none = steps(["u"], [[]], [[]], [[]], [[]], vocab=VOCAB)
    assert reasons(_ctx(SIM), none, np.array([[4]]), similar=True).to_pylist() == [
        "popular in Sports"]
    assert reasons(_ctx(SIM), _user(["a"], ["view"]), np.array([[2]]),
                   similar=False).to_pylist() == ["popular in Home"]


def test_an_item_the_user_touched_is_named_as_such_even_when_it_is_like_nothing_else():
    user = _user(["a", "c", "b"], ["view", "favorite", "view"])
    got = reasons(_ctx(np.zeros((5, 5), np.float32)), user, np.array([[4, 2]]), similar=True)
    assert got.to_pylist() == ["you saved it recently", "you viewed it recently"]
