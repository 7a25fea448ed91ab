"""Users' sequences as flat arrays: what every per-user computation of the night reads.

The sequences table holds one row per user with lists of items, event types and times. A
batch of it becomes `Steps`: the users, offsets into flat per-step arrays, the items as
vocabulary indices (int32, 1 for an item the vocabulary does not know), the event types as
codes into `schema.EVENT_TYPES` and the times. Nothing here is a Python list per user, so a
batch of any size costs a few arrays, and the same code serves a Spark worker's Arrow batch
and a local file read in batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from nightshelf import schema as S
from training.topk import masked_top

PAD, OOV = 0, 1  # vocabulary indices of padding and of an unknown item
PURCHASE_CODE = S.EVENT_TYPES.index(S.PURCHASE)


def to_datetime64(at: datetime) -> np.datetime64:
    """A (UTC) datetime as naive datetime64[us], the unit the step times use."""
    return np.datetime64(at.replace(tzinfo=None), "us")


def days_between(later, earlier) -> np.ndarray:
    """(later - earlier) in days, as float64; works on datetime64 scalars and arrays."""
    return (np.asarray(later - earlier).astype("timedelta64[us]").astype(np.float64)
            / 86_400e6)


def type_weights(weights: dict[str, float]) -> np.ndarray:
    """Weight per event-type code (the order of `schema.EVENT_TYPES`)."""
    return np.array([weights.get(t, 1.0) for t in S.EVENT_TYPES], dtype=np.float32)


@dataclass
class Steps:
    """`n` users' steps, oldest first: user r owns steps `ptr[r]:ptr[r + 1]`."""
    users: np.ndarray        # [n] user ids (object)
    ptr: np.ndarray          # [n + 1] int64 offsets
    items: np.ndarray        # [m] int32 vocabulary index
    types: np.ndarray        # [m] int8 code into schema.EVENT_TYPES
    times: np.ndarray        # [m] datetime64[us]
    bought_ptr: np.ndarray   # [n + 1] offsets into `bought`
    bought: np.ndarray       # [k] int32: items bought inside the exclusion window

    def __len__(self) -> int:
        return len(self.users)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.ptr)

    def step_rows(self) -> np.ndarray:
        """[m] the user row of every step."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.lengths)

    def bought_rows(self) -> np.ndarray:
        return np.repeat(np.arange(len(self), dtype=np.int64), np.diff(self.bought_ptr))

    def take(self, rows: np.ndarray) -> "Steps":
        """The users at `rows`, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        sel, ptr = _gather(self.ptr, rows)
        bsel, bptr = _gather(self.bought_ptr, rows)
        return Steps(self.users[rows], ptr, self.items[sel], self.types[sel], self.times[sel],
                     bptr, self.bought[bsel])

    def slice(self, start: int, stop: int) -> "Steps":
        return self.take(np.arange(start, min(stop, len(self))))

    def batches(self, size: int):
        for start in range(0, len(self), size):
            yield self.slice(start, start + size)

    def last(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, items) of each user's last `n` steps, oldest first."""
        rows = self.step_rows()
        from_end = self.ptr[1:][rows] - np.arange(len(rows))
        keep = from_end <= n
        return rows[keep], self.items[keep]

    def padded(self, length: int, values: np.ndarray | None = None) -> np.ndarray:
        """[n, length]: each user's last `length` items (or per-step `values`), left-padded
        with 0."""
        values = self.items if values is None else values
        out = np.zeros((len(self), length), dtype=values.dtype)
        rows = self.step_rows()
        col = length - (self.ptr[1:][rows] - np.arange(len(rows)))
        keep = col >= 0
        out[rows[keep], col[keep]] = values[keep]
        return out

    def rows_before(self, at: datetime) -> np.ndarray:
        """Rows of the users with at least one step before `at` (those `cut` keeps)."""
        early = self.times < to_datetime64(at)
        return np.nonzero(np.bincount(self.step_rows()[early], minlength=len(self)))[0]

    def cut(self, at: datetime, exclusion_days: int) -> tuple["Steps", "Steps"]:
        """(before, after): each user's steps before `at` and from `at` on, for the users with
        at least one step before it (rows aligned). `before.bought` is recomputed: the
        purchases in the `exclusion_days` before `at`."""
        t_at = to_datetime64(at)
        rows = self.step_rows()
        early = self.times < t_at
        n_before = np.bincount(rows[early], minlength=len(self))
        keep_users = self.rows_before(at)
        kept = np.isin(rows, keep_users) if len(keep_users) < len(self) else np.ones_like(early)
        new_row = np.cumsum(n_before > 0) - 1

        def part(mask):
            r = new_row[rows[mask]]
            ptr = np.zeros(len(keep_users) + 1, dtype=np.int64)
            np.cumsum(np.bincount(r, minlength=len(keep_users)), out=ptr[1:])
            return ptr, self.items[mask], self.types[mask], self.times[mask]

        b_ptr, b_items, b_types, b_times = part(kept & early)
        since = t_at - np.timedelta64(exclusion_days, "D")
        buy = (b_types == PURCHASE_CODE) & (b_times >= since)
        b_rows = np.repeat(np.arange(len(keep_users)), np.diff(b_ptr))
        keys = np.unique(b_rows[buy] * (1 << 32) + b_items[buy].astype(np.int64))
        bought_ptr = np.zeros(len(keep_users) + 1, dtype=np.int64)
        np.cumsum(np.bincount(keys >> 32, minlength=len(keep_users)), out=bought_ptr[1:])
        before = Steps(self.users[keep_users], b_ptr, b_items, b_types, b_times, bought_ptr,
                       (keys & 0xFFFFFFFF).astype(np.int32))
        a_ptr, a_items, a_types, a_times = part(kept & ~early)
        empty = np.zeros(len(keep_users) + 1, dtype=np.int64)
        after = Steps(self.users[keep_users], a_ptr, a_items, a_types, a_times, empty,
                      np.zeros(0, np.int32))
        return before, after


def _gather(ptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(flat positions, new offsets) of the segments `rows` of an offsets array."""
    lengths = ptr[rows + 1] - ptr[rows]
    new_ptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_ptr[1:])
    starts = np.repeat(ptr[rows] - new_ptr[:-1], lengths)
    return starts + np.arange(new_ptr[-1]), new_ptr


def from_arrow(table, vocab) -> Steps:
    """Steps from a sequences table or record batch (pyarrow), items looked up in `vocab`
    (a pyarrow string array: index 0 padding, 1 unknown)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def flat(name):
        col = table.column(name)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        return col, pc.list_flatten(col)

    items_col, items = flat(S.SEQ_ITEMS)
    lengths = pc.fill_null(pc.list_value_length(items_col), 0).to_numpy(zero_copy_only=False)
    ptr = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=ptr[1:])
    idx = pc.fill_null(pc.index_in(items, value_set=vocab), OOV).to_numpy(zero_copy_only=False)
    _, types = flat(S.SEQ_TYPES)
    codes = pc.index_in(types, value_set=pa.array(S.EVENT_TYPES))
    _, times = flat(S.SEQ_TIMES)
    bought_col, bought = flat(S.RECENT_PURCHASES)
    b_len = pc.fill_null(pc.list_value_length(bought_col), 0).to_numpy(zero_copy_only=False)
    bought_ptr = np.zeros(len(b_len) + 1, dtype=np.int64)
    np.cumsum(b_len, out=bought_ptr[1:])
    b_idx = pc.fill_null(pc.index_in(bought.cast(pa.string()), value_set=vocab), OOV)
    users = table.column(S.USER)
    return Steps(
        users=np.asarray(users.to_pylist(), dtype=object), ptr=ptr,
        items=idx.astype(np.int32), types=pc.fill_null(codes, 0).to_numpy(
            zero_copy_only=False).astype(np.int8),
        times=times.cast(pa.timestamp("us")).to_numpy(zero_copy_only=False).astype(
            "datetime64[us]"),
        bought_ptr=bought_ptr, bought=b_idx.to_numpy(zero_copy_only=False).astype(np.int32))


def descending(scores: np.ndarray) -> np.ndarray:
    """uint32 keys of float32 scores whose ascending order is the scores' descending order
    (equal scores, +0.0 and -0.0 included, get equal keys)."""
    bits = (np.asarray(scores, np.float32) + np.float32(0.0)).view(np.uint32)  # -0.0 -> +0.0
    ordered = np.where(bits >> 31, ~bits, bits | np.uint32(1 << 31))  # ascending floats
    return ~ordered


def top_columns(scores: np.ndarray, k: int, sample_every: int = 16) -> np.ndarray:
    """[n, k] column indices of each row's k highest float32 scores, best first, ties by
    lower column (what a stable sort of the whole row would give), at most 2^32 columns:
    `training.topk.masked_top` with nothing masked (no row is sorted or partitioned whole)."""
    return masked_top(scores, k, sample_every=sample_every)[0]


def grouped_rank(rows: np.ndarray, scores: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """Rank (0 = best) of every entry among the entries of its row: higher score first, ties
    by lower `tiebreak` (the item index), as a stable sort over the whole catalog would.

    Float32 scores of a batch (rows < 2^14, tiebreak < 2^18) sort as one uint64 key (row,
    score, tiebreak) in a single pass; anything else goes through `np.lexsort`."""
    n = len(rows)
    if not n:
        return np.zeros(0, np.int64)
    fits = (scores.dtype == np.float32 and rows.max() < (1 << 14) and rows.min() >= 0
            and tiebreak.max() < (1 << 18) and tiebreak.min() >= 0)
    if fits:
        key = ((rows.astype(np.uint64) << np.uint64(50))
               | (descending(scores).astype(np.uint64) << np.uint64(18))
               | tiebreak.astype(np.uint64))
        order = np.argsort(key, kind="stable")  # equal entries keep their order
    else:
        order = np.lexsort((tiebreak, -scores, rows))
    counts = np.bincount(rows, minlength=int(rows.max()) + 1)
    starts = np.cumsum(counts) - counts
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = np.arange(n) - starts[rows[order]]
    return ranks


def contains(sorted_keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    """query[k] in sorted_keys, for sorted unique keys (a binary search, no sort of query)."""
    if not len(sorted_keys):
        return np.zeros(len(query), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, query), len(sorted_keys) - 1)
    return sorted_keys[pos] == query


def lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray, default) -> np.ndarray:
    """values[keys == query] for each query (keys sorted, unique), else `default`."""
    if not len(keys):
        return np.full(len(query), default, dtype=values.dtype if len(values) else np.float32)
    pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return np.where(keys[pos] == query, values[pos], default)
