"""Item-kNN by co-occurrence: the reference definition of co-visitation.

The night computes it a block of items at a time on Spark's workers (`jobs/context.py`,
`training/covisit.py`, held to this by the tests); the benchmark and the tests fit it here.
Popularity is `training.context.popularity`; ALS is Spark MLlib (`jobs/evaluate.py`).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse


class ItemKNN:
    """Item-to-item cosine similarity of co-occurrence in users' histories.

    sim(i, j) = |users with i and j| / (sqrt(|users with i| * |users with j|) + shrink),
    keeping each item's `neighbours` most similar items; a user's score for j sums sim(i, j)
    over the items i in their recent history (most recent `recent` items).
    """

    def __init__(self, vocab_size: int, neighbours: int = 100, shrink: float = 10.0,
                 recent: int = 20):
        self.vocab_size, self.neighbours = vocab_size, neighbours
        self.shrink, self.recent = shrink, recent
        self.sim: sparse.csr_matrix | None = None

    def fit(self, histories: list[list[int]]) -> "ItemKNN":
        rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
        items = np.fromiter((i for h in histories for i in h), dtype=np.int64, count=len(rows))
        return self.fit_pairs(rows, items, len(histories))

    def fit_pairs(self, rows: np.ndarray, items: np.ndarray, n_users: int) -> "ItemKNN":
        """Fit on (user row, item) pairs; a user counts once per item."""
        x = _binary(rows, items, n_users, self.vocab_size)
        co = (x.T @ x).tocsr().astype(np.float32)
        co.setdiag(0)
        co.eliminate_zeros()
        n = np.asarray(x.sum(axis=0)).ravel()
        co = co.tocoo()
        vals = co.data / (np.sqrt(n[co.row] * n[co.col]) + self.shrink)
        sim = sparse.csr_matrix((vals, (co.row, co.col)), shape=co.shape)
        self.sim = top_neighbours(sim, self.neighbours)
        return self

    def score(self, histories: list[list[int]]) -> np.ndarray:
        """[n, vocab] dense scores for users with these histories (oldest first); for small
        batches (the benchmark), the nightly code uses `recent_scores`."""
        rows = np.repeat(np.arange(len(histories)), [len(h[-self.recent:]) for h in histories])
        items = np.fromiter((i for h in histories for i in h[-self.recent:]), dtype=np.int64,
                            count=len(rows))
        return np.asarray(recent_scores(self.sim, rows, items, len(histories)).todense(),
                          dtype=np.float32)


def _binary(rows: np.ndarray, items: np.ndarray, n_rows: int, size: int) -> sparse.csr_matrix:
    m = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, items)), shape=(n_rows, size))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def recent_scores(sim: sparse.csr_matrix, rows: np.ndarray, items: np.ndarray,
                  n_rows: int) -> sparse.csr_matrix:
    """[n_rows, vocab] sparse: sum of sim(i, j) over each row's (distinct) items i."""
    return (_binary(rows, items, n_rows, sim.shape[0]) @ sim).tocsr()


def top_neighbours(sim: sparse.csr_matrix, k: int) -> sparse.csr_matrix:
    """Each row's k largest entries (ties: lower column first)."""
    coo = sim.tocoo()
    order = np.lexsort((coo.col, -coo.data, coo.row))
    rows = coo.row[order]
    starts = np.searchsorted(rows, rows, side="left")
    keep = order[(np.arange(len(order)) - starts) < k]
    return sparse.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=sim.shape)
