"""Each row's top-k columns of a [batch, catalog] score array, in one compiled pass per row.

A batch of SASRec logits over tier L's catalog is [512, 50,060] float32 (102 MB). NumPy can
only select from it in whole-array passes (compare, count, `nonzero`, gather, each a trip
through memory), and those passes, not the model's multiply-adds, were the score worker's
largest cost. Here a Numba kernel goes row by row: a threshold from a strided sample of the
row (its m-th largest by partial selection, m chosen so that about 1.5 k entries reach it),
then one pass over the row that keeps the entries at or above it that the masks allow, as
uint64 keys that sort by score (descending), then column. A row where fewer than k allowed
entries reach the threshold takes a lower one, down to the whole row, so the result is
exact: what a stable sort of the masked row would give (`tests/training/test_ranks.py`
checks it against that sort). The row's maximum over all its entries, masked or not, comes
from a first pass over the row, which the second then reads from cache; with `relative`
the entries are ranked by their score less that maximum, as the night's features use it.

Compiled on first use, or loaded from the kernels' on-disk cache (`training.kernel`).
"""

from __future__ import annotations

import numpy as np

from training.kernel import kernel

_NONE = np.iinfo(np.uint64).max
_SIGN = np.uint32(0x80000000)


@kernel()
def sort_key(bits, col):
    """uint64 key of a float32 (its bits) and its column: ascending keys = descending
    scores, ties by lower column; -0.0 and +0.0 equal."""
    if bits == _SIGN:
        bits = np.uint32(0)
    ordered = ~bits if bits >> np.uint32(31) else bits | _SIGN
    return (np.uint64(~ordered) << np.uint64(32)) | np.uint64(col)


@kernel()
def in_sorted(cols, start, stop, col):
    """col in cols[start:stop] (sorted): a binary search."""
    lo, hi = start, stop
    while lo < hi:
        mid = (lo + hi) >> 1
        if cols[mid] < col:
            lo = mid + 1
        else:
            hi = mid
    return lo < stop and cols[lo] == col


@kernel()
def _row_max(row):
    """The row's maximum, over eight running maxima (no chain of dependent compares)."""
    v = len(row)
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = np.float32(-np.inf)
    j = 0
    while j + 8 <= v:
        a0, a1 = max(a0, row[j]), max(a1, row[j + 1])
        a2, a3 = max(a2, row[j + 2]), max(a3, row[j + 3])
        a4, a5 = max(a4, row[j + 4]), max(a5, row[j + 5])
        a6, a7 = max(a6, row[j + 6]), max(a7, row[j + 7])
        j += 8
    while j < v:
        a0 = max(a0, row[j])
        j += 1
    return max(max(max(a0, a1), max(a2, a3)), max(max(a4, a5), max(a6, a7)))


@kernel()
def _collect(row, bits, threshold, top, relative, never, mask_cols, a, b, keys, idx):
    """Keys of the row's allowed entries at or above `threshold` into `keys` (as many as
    fit); how many there are. First the columns that reach the threshold, gathered without
    a branch (`idx`: scratch of len(row) + 1), then the masks and keys on those only: a
    branch per column that goes either way at random cost more than the rest of the pass."""
    v = len(row)
    c = 0
    if relative:
        for j in range(v):
            idx[c] = j
            c += (row[j] - top) >= threshold
    else:
        for j in range(v):
            idx[c] = j
            c += row[j] >= threshold
    cap = len(keys)
    shifted = np.empty(1, np.float32)
    shifted_bits = shifted.view(np.uint32)
    k = 0
    for t in range(c):
        j = idx[t]
        if never[j] or (b > a and in_sorted(mask_cols, a, b, j)):
            continue
        if k < cap:
            if relative:
                shifted[0] = row[j] - top
                keys[k] = sort_key(shifted_bits[0], j)
            else:
                keys[k] = sort_key(bits[j], j)
        k += 1
    return k


@kernel()
def _top_keys(scores, bits, depth, every, m, relative, never, mask_ptr, mask_cols, keys,
              counts, maxes):
    """Per row r: keys[r, :counts[r]] (unsorted) hold the keys of its best allowed entries,
    at least its best `depth` (all of them when it has fewer), and nothing better is left
    out; maxes[r] = its maximum. See `top_keys`."""
    n, v = scores.shape
    cap = keys.shape[1]
    width = (v + every - 1) // every
    sample = np.empty(width, np.float32)
    idx = np.empty(v + 1, np.int64)
    for r in range(n):
        row, row_bits, out = scores[r], bits[r], keys[r]
        peak = _row_max(row)
        a, b = mask_ptr[r], mask_ptr[r + 1]
        want = m
        while True:
            if want >= width:
                threshold = np.float32(-np.inf)
            else:  # the sample's want-th largest: about depth * 1.5 entries reach it
                for t in range(width):
                    sample[t] = row[t * every]
                threshold = np.partition(sample, width - want)[width - want]
                if relative:
                    threshold = threshold - peak
            c = _collect(row, row_bits, threshold, peak, relative, never, mask_cols, a, b,
                         out, idx)
            if c >= depth or want >= width:
                break
            want *= 2  # too few allowed entries reached it: a lower one
        if c > cap:  # many ties at the threshold: all of them, and the best `cap` kept
            wide = np.empty(c, np.uint64)
            _collect(row, row_bits, threshold, peak, relative, never, mask_cols, a, b, wide,
                     idx)
            out[:] = np.sort(wide)[:cap]
            c = cap
        counts[r] = c
        maxes[r] = peak


def top_keys(scores: np.ndarray, depth: int, never: np.ndarray | None = None,
             masked: tuple[np.ndarray, np.ndarray] | None = None, sample_every: int = 16,
             relative: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keys [n, w] uint64, counts [n], row max [n]) of a float32 [n, v] array: row r's
    keys[:counts[r]] (unsorted) are the `sort_key`s of its best allowed columns, at least
    its best `depth` (or all it has), and every allowed column better than one of them is
    among them, so a key's rank in the row is the number of those keys below it.

    The threshold comes from a partial selection of a strided sample (about 1.5 x depth
    entries reach it; a row where fewer allowed ones do takes a lower one, down to the
    whole row), and one pass over the row keeps the allowed entries at or above it."""
    scores = np.ascontiguousarray(scores, np.float32)
    n, v = scores.shape
    depth = max(0, min(depth, v))
    if never is None:
        never = np.zeros(v, np.bool_)
    ptr, cols = masked if masked is not None else (np.zeros(n + 1, np.int64),
                                                   np.zeros(0, np.int64))
    keys = np.empty((n, min(v, 2 * depth + 64)), np.uint64)
    counts, maxes = np.zeros(n, np.int64), np.full(n, -np.inf, np.float32)
    if n and v:
        every = max(1, int(sample_every))
        _top_keys(scores, scores.view(np.uint32), depth, every,
                  int(np.ceil(1.5 * depth / every)) + 1, bool(relative),
                  np.ascontiguousarray(never, np.bool_), np.asarray(ptr, np.int64),
                  np.asarray(cols, np.int64), keys, counts, maxes)
    return keys, counts, maxes


@kernel()
def _first_keys(keys, counts, k, top):
    """top[r, :] = the columns of row r's k smallest keys, smallest first (-1 past them),
    through a sorted buffer (for small k)."""
    best = np.empty(max(k, 1), np.uint64)
    for r in range(len(counts)):
        kept = 0
        for e in range(counts[r]):
            key = keys[r, e]
            if kept == k and key >= best[k - 1]:
                continue
            j = kept if kept < k else k - 1
            while j > 0 and best[j - 1] > key:
                best[j] = best[j - 1]
                j -= 1
            best[j] = key
            if kept < k:
                kept += 1
        for j in range(kept):
            top[r, j] = np.int64(best[j] & np.uint64(0xFFFFFFFF))


def first_columns(keys: np.ndarray, counts: np.ndarray, k: int) -> np.ndarray:
    """[n, k] columns of each row's k best keys (`top_keys`), best first, -1 padded."""
    n = len(counts)
    top = np.full((n, k), -1, np.int64)
    if not n or not k:
        return top
    if k <= 128:
        _first_keys(keys, counts, k, top)
        return top
    width = int(counts.max(initial=0))
    pad = np.full((n, max(width, k)), _NONE, np.uint64)
    pad[:, :width] = keys[:, :width]
    pad[np.arange(pad.shape[1])[None, :] >= counts[:, None]] = _NONE
    pad.sort(axis=1)
    best = (pad[:, :k] & np.uint64(0xFFFFFFFF)).astype(np.int64)
    filled = np.arange(k)[None, :] < np.minimum(counts, k)[:, None]
    top[filled] = best[filled]
    return top


@kernel()
def key_ranks(keys, counts, scores, maxes, relative, cand_ptr, cand_cols, missing, out,
              out_score):
    """out[c] = the rank in row r of column cand_cols[c] (c in cand_ptr[r]:cand_ptr[r + 1]):
    how many of the row's keys (`top_keys`) are below its key, `missing` from `missing` on
    or when it is not among them; out_score[c] = its score (less the row's maximum with
    `relative`, as the key orders it: read here rather than gathered from the whole array
    again). Candidates must be allowed columns of their row. (A count over the row's keys
    per candidate that is among them, a loop the compiler vectorises; a candidate past the
    row's last key is not counted at all. Grouping the keys into buckets first, or sorting
    the candidates and placing each key among them, measured slower.)"""
    shifted = np.empty(1, np.float32)
    shifted_bits = shifted.view(np.uint32)
    plain_bits = scores.view(np.uint32)
    for r in range(len(counts)):
        row = keys[r, :counts[r]]
        last = np.uint64(0)
        for e in range(len(row)):
            last = max(last, row[e])
        for c in range(cand_ptr[r], cand_ptr[r + 1]):
            col = cand_cols[c]
            if relative:
                shifted[0] = scores[r, col] - maxes[r]
                key = sort_key(shifted_bits[0], col)
                out_score[c] = shifted[0]
            else:
                key = sort_key(plain_bits[r, col], col)
                out_score[c] = scores[r, col]
            if key > last:
                out[c] = missing
                continue
            ahead = 0
            for e in range(len(row)):
                ahead += row[e] < key
            out[c] = ahead if ahead < missing and ahead < len(row) else missing


def masked_top(scores: np.ndarray, k: int, never: np.ndarray | None = None,
               masked: tuple[np.ndarray, np.ndarray] | None = None, sample_every: int = 16,
               relative: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(top, count, row max) of a float32 [n, v] array: `top` [n, k] holds each row's best
    columns first (ties by lower column), of the columns the masks allow, padded with -1
    past `count[r]` (a row with fewer than k allowed columns); `row max` is the row's
    maximum over every column, masked or not.

    `never` [v] bool masks columns in every row; `masked` = (ptr [n + 1], cols) masks
    `cols[ptr[r]:ptr[r + 1]]` (sorted) in row r. With `relative`, columns are ranked by
    their score less the row's maximum, in float32 (what ranking `scores - row max` gives:
    values that round together tie, ties by lower column)."""
    n, v = np.shape(scores)
    k = max(0, min(k, v))
    keys, counts, maxes = top_keys(scores, k, never, masked, sample_every, relative)
    return first_columns(keys, counts, k), np.minimum(counts, k), maxes
