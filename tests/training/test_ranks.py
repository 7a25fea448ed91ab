"""The one-key sort of `grouped_rank` ranks exactly as the three-key `np.lexsort` would."""

import numpy as np
import pytest

from training.rowwise import row_ptr
from training.steps import contains, descending, grouped_rank, top_columns
from training.topk import first_columns, key_ranks, masked_top, top_keys

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


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_columns_equal_the_stable_full_sort_on_ties_masks_and_short_rows(seed):
    rng = np.random.default_rng(seed)
    n, v, k = 40, 5000, 100
    scores = rng.standard_normal((n, v)).astype(np.float32)
    scores[:10] = np.round(scores[:10])                 # few distinct values: ties everywhere
    scores[10:20, rng.random(v) < 0.5] = -1e9           # a masked block, as the night's masks
    scores[20:25, 30:] = -1e9                           # fewer than k unmasked
    scores[25:30] = np.sort(scores[25:30], axis=1)      # ascending rows
    scores[30:32] = 0.0
    scores[32, ::2] = -0.0                              # signed zeros are equal
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    assert np.array_equal(top_columns(scores, k), expected)
    assert np.array_equal(top_columns(scores, k, sample_every=64), expected)
    # short rows (one sort of the whole row) and k past the row
    assert np.array_equal(top_columns(scores[:, :300], k),
                          np.argsort(-scores[:, :300], axis=1, kind="stable")[:, :k])
    assert top_columns(scores[:, :50], k).shape == (n, 50)
    assert top_columns(scores[:0], k).shape == (0, k)


@pytest.mark.parametrize("seed", [0, 1])
def test_masked_top_leaves_out_masked_columns_and_keeps_the_row_maximum(seed):
    rng = np.random.default_rng(seed)
    n, v, k = 30, 4000, 200
    scores = rng.standard_normal((n, v)).astype(np.float32)
    scores[:8] = np.round(scores[:8])                   # ties at every threshold
    never = rng.random(v) < 0.3
    never[np.argmax(scores[9])] = True                  # a row whose best column is masked
    masked = [np.sort(rng.choice(v, int(rng.integers(0, 40)), replace=False))
              for _ in range(n)]
    masked[10] = np.nonzero(~never)[0][5:]              # fewer than k allowed columns
    ptr = np.cumsum([0] + [len(m) for m in masked])
    top, count, row_max = masked_top(scores, k, never, (ptr, np.concatenate(masked)))
    for r in range(n):
        order = np.argsort(-scores[r], kind="stable")
        allowed = order[~never[order] & ~np.isin(order, masked[r])][:k]
        assert count[r] == len(allowed)
        np.testing.assert_array_equal(top[r, :count[r]], allowed)
        assert (top[r, count[r]:] == -1).all()
    assert count[10] == 5
    np.testing.assert_array_equal(row_max, scores.max(axis=1))


def test_masked_top_pads_when_every_row_has_fewer_allowed_columns_than_k():
    scores = np.float32([[3, 1, 2, 0], [0, 5, 4, 1]])
    never = np.array([False, False, True, True])
    top, count, _ = masked_top(scores, 3, never)
    np.testing.assert_array_equal(top, [[0, 1, -1], [1, 0, -1]])
    np.testing.assert_array_equal(count, [2, 2])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_key_ranks_are_positions_in_the_relative_masked_stable_sort(seed):
    # what the night's SASRec features use: the keys of each row's best allowed columns,
    # ranked by score less the row's maximum, give every allowed candidate its exact
    # position in that order (capped at `depth`), and the best of them its candidates
    rng = np.random.default_rng(seed)
    n, v, depth = 24, 6000, 300
    scores = (rng.standard_normal((n, v)) * 3 + 100).astype(np.float32)
    scores[:6] = np.round(scores[:6] * 4) / 4           # ties, also after the shift
    scores[6:8] = 0.0                                   # one value: ties all the way
    never = rng.random(v) < 0.2
    masked = [np.sort(rng.choice(v, int(rng.integers(0, 30)), replace=False))
              for _ in range(n)]
    masked[9] = np.nonzero(~never)[0][7:]               # fewer than depth allowed columns
    ptr = np.cumsum([0] + [len(m) for m in masked])
    keys, counts, row_max = top_keys(scores, depth, never, (ptr, np.concatenate(masked)),
                                     relative=True)
    np.testing.assert_array_equal(row_max, scores.max(axis=1))
    order = []
    for r in range(n):
        shifted = scores[r] - row_max[r]
        o = np.argsort(-shifted, kind="stable")
        order.append(o[~never[o] & ~np.isin(o, masked[r])])
    assert counts[9] == 7
    top = first_columns(keys, counts, 40)
    for r in range(n):
        np.testing.assert_array_equal(top[r][top[r] >= 0], order[r][:40])
    cands = [np.sort(rng.choice(order[r], min(len(order[r]), 60), replace=False))
             for r in range(n)]
    cands[0] = np.sort(order[0][:60])                   # the very best, ranks 0..59
    cr = np.repeat(np.arange(n), [len(c) for c in cands])
    ci = np.concatenate(cands)
    out, score = np.empty(len(ci), np.int64), np.empty(len(ci), np.float32)
    key_ranks(keys, counts, scores, row_max, True, row_ptr(cr, n), ci, depth, out, score)
    np.testing.assert_array_equal(score, scores[cr, ci] - row_max[cr])
    want = np.concatenate([[min(int(np.nonzero(order[r] == c)[0][0]), depth) for c in cands[r]]
                           for r in range(n)])
    np.testing.assert_array_equal(out, want)
    assert (out < depth).any() and (out == depth).any()
