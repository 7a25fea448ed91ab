"""The compiled per-user kernels rank as `grouped_rank` does, masks and ties included."""

import numpy as np
import pytest
from scipy import sparse

from training.rowwise import (
    pick,
    row_ptr,
    source_features,
    source_top,
    text_dots,
    unique_pairs,
)
from training.steps import contains, grouped_rank


def _case(seed: int):
    rng = np.random.default_rng(seed)
    n, v = 40, 300
    g = sparse.random(n, v, density=0.3, random_state=seed, dtype=np.float32).tocsr()
    g.data = np.round(g.data * 8).astype(np.float32) / 8 - np.float32(0.125)  # ties, zeros
    never = rng.random(v) < 0.1
    masked = np.unique(rng.integers(0, n, 60) * v + rng.integers(0, v, 60))
    entries = (g.indptr.astype(np.int64), g.indices.astype(np.int64), g.data,
               g.data.view(np.uint32))
    ptr, cols = row_ptr(masked // v, n), masked % v
    coo = g.tocoo()
    rows, items, vals = coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data
    ok = ~never[items] & ~contains(masked, rows * v + items) & (vals > 0)
    return rng, n, v, g, never, (ptr, cols), entries, (rows, items, vals, ok)


@pytest.mark.parametrize("seed", range(4))
def test_source_top_and_features_equal_grouped_rank(seed):
    rng, n, v, g, never, (ptr, cols), entries, (rows, items, vals, ok) = _case(seed)
    ranks = grouped_rank(rows[ok], vals[ok], items[ok])
    size = 7
    top, depth = np.empty((n, size), np.int64), np.empty(n, np.int64)
    keys = np.empty(len(vals), np.uint64)
    source_top(*entries, never, ptr, cols, size, top, depth, keys)
    want = np.full((n, size), -1, np.int64)
    pick = ranks < size
    want[rows[ok][pick], ranks[pick]] = items[ok][pick]
    np.testing.assert_array_equal(top, want)
    np.testing.assert_array_equal(depth, np.bincount(rows[ok], minlength=n))

    # candidates: some of the row's entries, allowed or not, and items it does not have
    cand = np.unique(np.concatenate([rng.integers(0, n, 300) * v + rng.integers(0, v, 300),
                                     rows[::3] * v + items[::3]]))
    cr, ci = cand // v, cand % v
    score, rank = np.empty(len(ci), np.float32), np.empty(len(ci), np.int64)
    scratch = np.full(v, -1, np.int64)
    source_features(*entries[:3], keys, row_ptr(cr, n), ci, scratch, score, rank)
    assert (scratch == -1).all()
    dense = g.toarray()
    np.testing.assert_array_equal(score, dense[cr, ci])
    keys = rows[ok] * v + items[ok]
    pos = np.searchsorted(keys, cand)
    hit = (pos < len(keys)) & (keys[np.minimum(pos, len(keys) - 1)] == cand)
    np.testing.assert_array_equal(rank, np.where(hit, ranks[np.minimum(pos, len(keys) - 1)],
                                                 -1))


def test_unique_pairs_equal_numpy_unique_of_row_item_keys():
    rng = np.random.default_rng(5)
    rows, items = rng.integers(0, 30, 2000), rng.integers(0, 50, 2000)
    keys = np.unique(rows * 50 + items)
    r, i = unique_pairs(rows, items, 31, 50)
    np.testing.assert_array_equal(r, keys // 50)
    np.testing.assert_array_equal(i, keys % 50)
    assert unique_pairs(rows[:0], items[:0], 3, 50)[0].shape == (0,)


def test_pick_reads_a_graph_at_grouped_pairs_and_text_dots_are_dot_products():
    rng = np.random.default_rng(11)
    g = sparse.random(50, 80, density=0.2, random_state=11, dtype=np.float32).tocsr()
    rows = rng.integers(0, 50, 30)
    cols = rng.integers(-1, 80, 200)   # -1: no column (the value is 0)
    ptr = np.sort(np.concatenate([[0, 200], rng.integers(0, 201, 29)]))
    want = np.where(cols >= 0, g.toarray()[np.repeat(rows, np.diff(ptr)), cols], 0.0)
    np.testing.assert_array_equal(pick(g, rows, ptr, cols), want.astype(np.float32))

    vec = rng.standard_normal((80, 24)).astype(np.float32)
    first, second = rng.standard_normal((2, 30, 24)).astype(np.float32)
    items = rng.integers(0, 80, 200)
    out = np.empty((2, 200), np.float32)
    text_dots(vec, items, ptr, first, second, out[0], out[1])
    user = np.repeat(np.arange(30), np.diff(ptr))
    np.testing.assert_allclose(out[0], (vec[items] * first[user]).sum(axis=1), atol=1e-5)
    np.testing.assert_allclose(out[1], (vec[items] * second[user]).sum(axis=1), atol=1e-5)
