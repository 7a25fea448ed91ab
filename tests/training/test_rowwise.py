"""The compiled per-user kernels rank as `grouped_rank` does, masks and ties included."""

import numpy as np
import pytest
from scipy import sparse

from training.baselines import recent_scores
from training.rowwise import (
    graph_source,
    pick,
    row_ptr,
    source_features,
    text_dots,
    unique_pairs,
)
from training.steps import contains, grouped_rank
from training.topk import _NONE, sort_key


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


def _graph_source(graph, user_ptr, user_items, never, ptr, cols, size):
    """`graph_source` over `graph` from each row's items: (top, depth, its entries)."""
    n, v = len(user_ptr) - 1, graph.shape[1]
    reach = int(np.diff(graph.indptr)[user_items].sum())
    out_ptr, out_idx = np.empty(n + 1, np.int64), np.empty(reach, graph.indices.dtype)
    out_val, out_keys = np.empty(reach, np.float32), np.empty(reach, np.uint64)
    top, depth = np.empty((n, size), np.int64), np.empty(n, np.int64)
    graph_source(graph.indptr, graph.indices, graph.data, user_ptr, user_items, never, ptr,
                 cols, size, top, depth, np.full(v, -1, np.int64),
                 np.empty(v, graph.data.dtype), np.empty(v, np.int64), out_ptr, out_idx,
                 out_val, out_keys)
    m = out_ptr[n]
    return top, depth, (out_ptr, out_idx[:m], out_val[:m], out_keys[:m])


def _ranked_as_grouped_rank(n, size, rows, items, vals, ok):
    """(top, depth) that `grouped_rank` gives the allowed entries."""
    ranks = grouped_rank(rows[ok], vals[ok], items[ok])
    want = np.full((n, size), -1, np.int64)
    pick = ranks < size
    want[rows[ok][pick], ranks[pick]] = items[ok][pick]
    return want, np.bincount(rows[ok], minlength=n), ranks


@pytest.mark.parametrize("seed", range(4))
def test_graph_source_ranks_and_features_equal_grouped_rank(seed):
    """Each row its own graph row (one recent item, r): the tops and depths `grouped_rank`
    gives, and each candidate's score and rank in the row."""
    rng, n, v, g, never, (ptr, cols), entries, (rows, items, vals, ok) = _case(seed)
    size = 7
    top, depth, found = _graph_source(g, np.arange(n + 1), np.arange(n), never, ptr, cols,
                                      size)
    want, want_depth, ranks = _ranked_as_grouped_rank(n, size, rows, items, vals, ok)
    np.testing.assert_array_equal(top, want)
    np.testing.assert_array_equal(depth, want_depth)

    # candidates: some of the row's entries, allowed or not, and items it does not have
    cand = np.unique(np.concatenate([rng.integers(0, n, 300) * v + rng.integers(0, v, 300),
                                     rows[::3] * v + items[::3]]))
    cr, ci = cand // v, cand % v
    score, rank = np.empty(len(ci), np.float32), np.empty(len(ci), np.int64)
    scratch = np.full(v, -1, np.int64)
    source_features(*found, row_ptr(cr, n), ci, scratch, score, rank)
    assert (scratch == -1).all()
    dense = g.toarray()
    np.testing.assert_array_equal(score, dense[cr, ci])
    keys = rows[ok] * v + items[ok]
    pos = np.searchsorted(keys, cand)
    hit = (pos < len(keys)) & (keys[np.minimum(pos, len(keys) - 1)] == cand)
    np.testing.assert_array_equal(rank, np.where(hit, ranks[np.minimum(pos, len(keys) - 1)],
                                                 -1))


@pytest.mark.parametrize("seed", range(3))
def test_graph_source_equals_scipys_product_then_grouped_rank(seed):
    """The one-pass graph source: SciPy's sum of the graph's rows at each row's recent items
    (repeats counted once; sums that cancel to zero dropped), the same entries and values,
    each allowed entry's sort key (the largest uint64 for the others), and the tops and
    depths `grouped_rank` gives the product's allowed entries."""
    rng = np.random.default_rng(seed)
    n, v = 50, 120
    graph = sparse.random(v, v, density=0.08, random_state=seed, dtype=np.float32).tocsr()
    graph.data = np.round(graph.data * 8).astype(np.float32) / 8 - np.float32(0.25)
    rr = np.sort(rng.integers(0, n - 3, 400))  # the last rows have no recent items
    ri = rng.integers(0, v, 400)
    never = rng.random(v) < 0.1
    masked = np.unique(rng.integers(0, n, 60) * v + rng.integers(0, v, 60))
    ptr, cols = row_ptr(masked // v, n), masked % v
    size = 6

    g = recent_scores(graph, rr, ri, n)
    data = g.data.astype(np.float32)
    coo_rows = np.repeat(np.arange(n), np.diff(g.indptr))
    g_items = g.indices.astype(np.int64)
    ok = ~never[g_items] & ~contains(masked, coo_rows * v + g_items) & (data > 0)
    keys = np.array([sort_key(b, i) if a else _NONE
                     for a, b, i in zip(ok, data.view(np.uint32), g_items)], np.uint64)

    recent = np.unique(rr * v + ri)
    top, depth, (out_ptr, out_idx, out_val, out_keys) = _graph_source(
        graph, row_ptr(recent // v, n), recent % v, never, ptr, cols, size)
    want, want_depth, _ = _ranked_as_grouped_rank(n, size, coo_rows, g_items, data, ok)
    np.testing.assert_array_equal(top, want)
    np.testing.assert_array_equal(depth, want_depth)
    np.testing.assert_array_equal(out_ptr, g.indptr)
    for r in range(n):  # the same entries per row, in another order
        a, b = g.indptr[r], g.indptr[r + 1]
        theirs, ours = np.argsort(g.indices[a:b]), a + np.argsort(out_idx[a:b])
        np.testing.assert_array_equal(out_idx[ours], g.indices[a:b][theirs])
        np.testing.assert_array_equal(out_val[ours], data[a:b][theirs])
        np.testing.assert_array_equal(out_keys[ours], keys[a:b][theirs])
    assert out_ptr[n] == len(data) and (data != 0).all()


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
