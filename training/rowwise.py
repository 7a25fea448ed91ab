"""A batch's (user, item) entries worked through one user at a time, compiled (Numba).

The candidate sources score items per user: co-visitation and text each give a user up to
a couple of thousand (item, score) entries, of which the user's candidates are a few
dozen. In NumPy, ranking those entries and looking candidates up in them took global sorts
of every entry of the batch and a binary search per candidate and feature. Here each user's
entries are read where they lie (a CSR row, a row of SASRec's top items):

- `graph_source`: a row's entries of a graph source (the sum of the graph's rows at the
  user's recent items), its best `size` allowed entries (score descending, ties by lower
  item), kept in a small sorted buffer, and how many allowed entries the row has;
- `source_features`: for each candidate, its score in the row (0 where the row has none)
  and its exact rank among the row's allowed entries (-1 where it is not one), by counting
  the entries above each candidate's key, with no sort of the row;
- `pick`: a graph's values at given (row, column) pairs, grouped by row;
- `text_dots`: two dot products of each candidate's vector with its row's vectors;
- `unique_pairs`: the union of the sources' candidates, sorted by user, then item.

Orders are those of `training.steps.grouped_rank`: a float32 score and the item as one
uint64 key (`training.topk.sort_key` of its bits), so results equal the NumPy ranking's
exactly (tests compare them).
Memory: one catalog-sized scratch array per call, whatever the batch.
"""

from __future__ import annotations

import numpy as np

from training.kernel import kernel
from training.topk import _NONE, in_sorted, sort_key


@kernel()
def _rank_row(indices, data, bits, lo, hi, never, mask_cols, a, b, size, best, top, r,
              keys):
    """Entries lo:hi of row r: each one's key into `keys` (the largest uint64 when it is not
    allowed), the best `size` allowed items into top[r] (best first, -1 past the end) through
    the sorted buffer `best`; how many are allowed. Called once per row: the loop over the
    entries stays inside (with a call per entry taking the arrays, it ran ten times slower,
    about 50 ns an entry instead of 4)."""
    kept = 0
    count = 0
    for e in range(lo, hi):
        item = indices[e]
        if (not data[e] > 0 or never[item]
                or (b > a and in_sorted(mask_cols, a, b, item))):
            keys[e] = _NONE
            continue
        count += 1
        key = sort_key(bits[e], item)
        keys[e] = key
        if size == 0 or (kept == size and key >= best[size - 1]):
            continue
        j = kept if kept < size else size - 1  # insertion into the sorted buffer
        while j > 0 and best[j - 1] > key:
            best[j] = best[j - 1]
            j -= 1
        best[j] = key
        if kept < size:
            kept += 1
    for j in range(size):
        top[r, j] = np.int64(best[j] & np.uint64(0xFFFFFFFF)) if j < kept else -1
    return count


@kernel()
def graph_source(g_ptr, g_idx, g_val, u_ptr, u_items, never, mask_ptr, mask_cols, size,
                 top, depth, mark, acc, touched, out_ptr, out_idx, out_val, out_keys):
    """Row r's entries are the sums of the graph's rows at its items
    u_items[u_ptr[r]:u_ptr[r + 1]] (distinct, ascending: summed in that order, in the graph's
    dtype, as SciPy's sparse product sums them; exact zeros dropped as it drops them),
    written to out_ptr / out_idx / out_val (float32, the row's entries in the order first
    reached); out_keys[e] = entry e's sort key, or the largest uint64 when it is not allowed
    (what `source_features` reads); top[r, :] = its best `size` allowed entries' items, best
    first (-1 past the row's end); depth[r] = its allowed entries. An entry is allowed when
    its score is positive and neither `never` nor the row's masked items
    (mask_cols[mask_ptr[r]:mask_ptr[r + 1]], sorted) hold its item. `mark` (int64 [vocab],
    all -1), `acc` ([vocab], the graph's dtype) and `touched` (int64 [vocab]) are scratch;
    out_* are sized for every reached (row, column)."""
    best = np.empty(max(size, 1), np.uint64)
    bits = out_val.view(np.uint32)
    e = 0
    for r in range(len(u_ptr) - 1):
        out_ptr[r] = e
        t = 0
        for q in range(u_ptr[r], u_ptr[r + 1]):
            i = u_items[q]
            for kk in range(g_ptr[i], g_ptr[i + 1]):
                j = g_idx[kk]
                if mark[j] != r:
                    mark[j] = r
                    acc[j] = 0
                    touched[t] = j
                    t += 1
                acc[j] += g_val[kk]
        lo = e
        for q in range(t):
            if acc[touched[q]] != 0:
                out_idx[e] = touched[q]
                out_val[e] = np.float32(acc[touched[q]])
                e += 1
        depth[r] = _rank_row(out_idx, out_val, bits, lo, e, never, mask_cols, mask_ptr[r],
                             mask_ptr[r + 1], size, best, top, r, out_keys)
    out_ptr[len(u_ptr) - 1] = e


@kernel()
def source_features(indptr, indices, data, keys, cand_ptr, cand_items, scratch, score_out,
                    rank_out):
    """For every candidate c of row r (cand_items[cand_ptr[r]:cand_ptr[r + 1]]): its
    entry's score in row r (0.0 without one) and its rank among the row's allowed entries
    (as `graph_source` orders them; -1 when it is not one), from the entries' `keys` that
    `graph_source` wrote: a count of the row's keys below each candidate's, a loop the
    compiler vectorises. `scratch`: int64 [vocab], all -1 (left so)."""
    n = len(indptr) - 1
    for r in range(n):
        a, b = cand_ptr[r], cand_ptr[r + 1]
        if a == b:
            continue
        lo, hi = indptr[r], indptr[r + 1]
        for e in range(lo, hi):
            scratch[indices[e]] = e
        row = keys[lo:hi]
        for c in range(a, b):
            e = scratch[cand_items[c]]
            score_out[c] = data[e] if e >= 0 else np.float32(0.0)
            rank_out[c] = -1
            if e >= 0 and keys[e] != _NONE:
                key = keys[e]
                ahead = 0
                for j in range(len(row)):
                    ahead += row[j] < key
                rank_out[c] = ahead
        for e in range(lo, hi):
            scratch[indices[e]] = -1


@kernel()
def _pick(indptr, indices, data, rows, ptr, cols, scratch, out):
    for g in range(len(rows)):
        a, b = indptr[rows[g]], indptr[rows[g] + 1]
        for e in range(a, b):
            scratch[indices[e]] = e
        for q in range(ptr[g], ptr[g + 1]):
            e = scratch[cols[q]] if cols[q] >= 0 else -1
            out[q] = data[e] if e >= 0 else np.float32(0.0)
        for e in range(a, b):
            scratch[indices[e]] = -1


def pick(graph, rows: np.ndarray, ptr: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """graph[rows[g], cols[q]] for q in ptr[g]:ptr[g + 1] of each group g (0.0 where the
    graph has no entry, or cols[q] < 0), float32: each group's row spread once over a
    catalog-sized scratch array, then read per query (no search of the graph's entries)."""
    out = np.empty(len(cols), np.float32)
    _pick(graph.indptr, graph.indices, graph.data, np.asarray(rows, np.int64),
          np.asarray(ptr, np.int64), np.asarray(cols, np.int64),
          np.full(graph.shape[1], -1, np.int64), out)
    return out


@kernel(fastmath={"reassoc", "contract"})  # sums in lanes
def text_dots(vec, cand_items, cand_ptr, first, second, out_first, out_second):
    """For every candidate c of row r: vec[cand_items[c]] . first[r] and . second[r]."""
    dim = vec.shape[1]
    for r in range(len(cand_ptr) - 1):
        for c in range(cand_ptr[r], cand_ptr[r + 1]):
            v = vec[cand_items[c]]
            a = np.float32(0.0)
            b = np.float32(0.0)
            for d in range(dim):
                a += v[d] * first[r, d]
                b += v[d] * second[r, d]
            out_first[c], out_second[c] = a, b


@kernel()
def _unique_pairs(rows, items, n, seen):
    start = np.zeros(n + 1, np.int64)
    for r in rows:
        start[r + 1] += 1
    for r in range(n):
        start[r + 1] += start[r]
    fill = start[:-1].copy()
    bucket = np.empty(len(rows), np.int64)
    for e in range(len(rows)):
        bucket[fill[rows[e]]] = items[e]
        fill[rows[e]] += 1
    out_rows = np.empty(len(rows), np.int64)
    out_items = np.empty(len(rows), np.int64)
    m = 0
    for r in range(n):
        first = m
        for e in range(start[r], start[r + 1]):
            item = bucket[e]
            if not seen[item]:
                seen[item] = True
                out_items[m] = item
                m += 1
        out_items[first:m] = np.sort(out_items[first:m])
        for e in range(first, m):
            out_rows[e] = r
            seen[out_items[e]] = False
    return out_rows[:m], out_items[:m]


def unique_pairs(rows: np.ndarray, items: np.ndarray, n: int,
                 size: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (row, item) pairs, sorted by row then item (what `np.unique` of
    row * size + item gives), by a counting sort of the rows and a small sort per row."""
    return _unique_pairs(np.asarray(rows, np.int64), np.asarray(items, np.int64), n,
                         np.zeros(size, np.bool_))


def row_ptr(rows: np.ndarray, n: int) -> np.ndarray:
    """[n + 1] offsets of each row's run in sorted `rows`."""
    return np.searchsorted(rows, np.arange(n + 1))
