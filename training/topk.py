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

Compiled once per process on first use (about a second; nothing is cached on disk, so the
job code can travel as a zip).
"""

from __future__ import annotations

import numba
import numpy as np

_NONE = np.iinfo(np.uint64).max
_SIGN = np.uint32(0x80000000)


@numba.njit(nogil=True, cache=False)
def sort_key(bits, col):
    """uint64 key of a float32 (its bits) and its column: ascending keys = descending
    scores, ties by lower column; -0.0 and +0.0 equal."""
    if bits == _SIGN:
        bits = np.uint32(0)
    ordered = ~bits if bits >> np.uint32(31) else bits | _SIGN
    return (np.uint64(~ordered) << np.uint64(32)) | np.uint64(col)


@numba.njit(nogil=True, cache=False)
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


@numba.njit(nogil=True, cache=False)
def _select(scores, bits, thresholds, relative, never, mask_ptr, mask_cols, rows, keys, counts,
            maxes):
    """For each row r = rows[i]: keys[i, :counts[i]] (unsorted) of its allowed entries at
    or above thresholds[i], and the row's maximum. With `relative`, entries are ranked by
    their score less the row's maximum (as float32 rounds it, so scores that round to the
    same value tie). counts[i] > keys.shape[1] means the buffer was too small for the row
    (the keys past it are not written)."""
    v = scores.shape[1]
    cap = keys.shape[1]
    shifted = np.empty(1, np.float32)
    shifted_bits = shifted.view(np.uint32)
    for i in range(len(rows)):
        r = rows[i]
        top = np.float32(-np.inf)
        for j in range(v):
            top = max(top, scores[r, j])
        threshold = thresholds[i] - top if relative else thresholds[i]
        a, b = mask_ptr[r], mask_ptr[r + 1]
        c = 0
        for j in range(v):
            x = scores[r, j] - top if relative else scores[r, j]
            if x >= threshold:
                if never[j] or (b > a and in_sorted(mask_cols, a, b, j)):
                    continue
                if c < cap:
                    if relative:
                        shifted[0] = x
                        keys[i, c] = sort_key(shifted_bits[0], j)
                    else:
                        keys[i, c] = sort_key(bits[r, j], j)
                c += 1
        counts[i] = c
        maxes[i] = top


def _thresholds(sample: np.ndarray, m: int) -> np.ndarray:
    """Each row's m-th largest sampled score (-inf when m covers the whole sample)."""
    width = sample.shape[1]
    if m >= width:
        return np.full(len(sample), -np.inf, np.float32)
    return np.partition(sample, width - m, axis=1)[:, width - m]


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
    scores = np.ascontiguousarray(scores, np.float32)
    n, v = scores.shape
    k = max(0, min(k, v))
    if never is None:
        never = np.zeros(v, np.bool_)
    ptr, cols = masked if masked is not None else (np.zeros(n + 1, np.int64),
                                                   np.zeros(0, np.int64))
    top = np.full((n, k), -1, np.int64)
    if not n or not k:
        return top, np.zeros(n, np.int64), (scores.max(axis=1) if v else
                                            np.full(n, -np.inf, np.float32))
    args = (scores, scores.view(np.uint32))
    relative = bool(relative)
    masks = (np.ascontiguousarray(never, np.bool_), np.asarray(ptr, np.int64),
             np.asarray(cols, np.int64))
    every = max(1, int(sample_every))
    sample = scores[:, ::every]
    m = min(sample.shape[1], int(np.ceil(1.5 * k / every)) + 1)
    thr = _thresholds(sample, m)
    keys = np.empty((n, min(v, 2 * k + 64)), np.uint64)
    counts = np.empty(n, np.int64)
    maxes = np.empty(n, np.float32)
    _select(*args, thr, relative, *masks, np.arange(n, dtype=np.int64), keys, counts, maxes)
    short = np.nonzero(counts < k)[0]
    while len(short) and m < sample.shape[1]:  # too few allowed reached it: a lower one
        m *= 2
        thr[short] = _thresholds(sample[short], m)
        part, c = np.empty((len(short), keys.shape[1]), np.uint64), np.empty(len(short), np.int64)
        _select(*args, thr[short], relative, *masks, short, part, c,
                np.empty(len(short), np.float32))
        keys[short], counts[short] = part, c
        short = short[c < k]
    over = np.nonzero(counts > keys.shape[1])[0]
    if len(over):  # many ties at the threshold: those rows again, with room for all
        wide = np.empty((len(over), int(counts[over].max())), np.uint64)
        _select(*args, thr[over], relative, *masks, over, wide, np.empty(len(over), np.int64),
                np.empty(len(over), np.float32))
    width = int(counts.max())
    sort = np.full((n, max(width, k)), _NONE, np.uint64)
    sort[:, :min(width, keys.shape[1])] = keys[:, :width]
    if len(over):
        sort[over, :wide.shape[1]] = wide
    sort[np.arange(sort.shape[1])[None, :] >= counts[:, None]] = _NONE  # unused slots
    sort.sort(axis=1)
    got = np.minimum(counts, k)
    best = (sort[:, :k] & np.uint64(0xFFFFFFFF)).astype(np.int64)
    filled = np.arange(k)[None, :] < got[:, None]
    top[filled] = best[filled]
    return top, got, maxes
