"""The one-key sort of `grouped_rank` ranks exactly as the three-key `np.lexsort` would."""

import numpy as np
import pytest

from training.steps import contains, descending, grouped_rank

SPECIAL = np.array([0.0, -0.0, 1.5, -1.5, -1e9, 3.25, 1e-40, -1e-40, np.inf, -np.inf],
                   np.float32)


def lexsort_rank(rows, scores, tiebreak):
    order = np.lexsort((tiebreak, -scores, rows))
    ranks = np.empty(len(rows), np.int64)
    ranks[order] = np.arange(len(rows)) - np.searchsorted(rows[order], rows[order])
    return ranks


@pytest.mark.parametrize("seed", range(20))
def test_grouped_rank_equals_the_lexsort_with_ties_duplicates_and_signed_zeros(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    rows = rng.integers(0, int(rng.integers(1, 60)), n)
    tiebreak = rng.integers(0, int(rng.integers(1, 500)), n)  # duplicates of whole entries
    scores = (rng.choice(SPECIAL, n) if seed % 2 else
              rng.normal(size=n).astype(np.float32))
    want = lexsort_rank(rows, scores, tiebreak)
    np.testing.assert_array_equal(grouped_rank(rows, scores, tiebreak), want)
    # float64 scores and rows past the one-key range take the lexsort path
    np.testing.assert_array_equal(grouped_rank(rows, scores.astype(np.float64), tiebreak),
                                  want)
    far = rows + (1 << 14)
    np.testing.assert_array_equal(grouped_rank(far, scores, tiebreak),
                                  lexsort_rank(far, scores, tiebreak))


def test_descending_keys_order_floats_from_largest_to_smallest():
    order = np.argsort(descending(SPECIAL), kind="stable")
    assert list(SPECIAL[order]) == sorted(SPECIAL.tolist(), reverse=True)
    assert descending(np.float32([0.0]))[0] == descending(np.float32([-0.0]))[0]


def test_contains_is_membership_in_sorted_keys():
    rng = np.random.default_rng(3)
    keys, query = np.unique(rng.integers(0, 500, 60)), rng.integers(0, 600, 400)
    np.testing.assert_array_equal(contains(keys, query), np.isin(query, keys))
    assert not contains(np.zeros(0, np.int64), query).any()
