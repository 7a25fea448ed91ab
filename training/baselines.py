"""Baselines every model must beat, computed on the same split: item-kNN by co-occurrence.

(Popularity lives in `training.evaluate.popularity`, where the nightly holdout needs it.)
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

    def _users_by_items(self, histories: list[list[int]]) -> sparse.csr_matrix:
        rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
        cols = np.fromiter((i for h in histories for i in h), dtype=np.int64, count=len(rows))
        m = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                              shape=(len(histories), self.vocab_size))
        m.data[:] = 1.0  # a user counts once per item
        return m

    def fit(self, histories: list[list[int]]) -> "ItemKNN":
        x = self._users_by_items(histories)
        x.sum_duplicates()
        x.data[:] = 1.0
        co = (x.T @ x).tocsr().astype(np.float32)
        co.setdiag(0)
        co.eliminate_zeros()
        n = np.asarray(x.sum(axis=0)).ravel()
        co = co.tocoo()
        vals = co.data / (np.sqrt(n[co.row] * n[co.col]) + self.shrink)
        sim = sparse.csr_matrix((vals, (co.row, co.col)), shape=co.shape)
        self.sim = self._top_neighbours(sim)
        return self

    def _top_neighbours(self, sim: sparse.csr_matrix) -> sparse.csr_matrix:
        rows, cols, vals = [], [], []
        for i in range(sim.shape[0]):
            start, end = sim.indptr[i], sim.indptr[i + 1]
            if end == start:
                continue
            v, c = sim.data[start:end], sim.indices[start:end]
            keep = np.argsort(-v)[: self.neighbours]
            rows.append(np.full(len(keep), i))
            cols.append(c[keep])
            vals.append(v[keep])
        if not rows:
            return sparse.csr_matrix(sim.shape, dtype=np.float32)
        coords = (np.concatenate(rows), np.concatenate(cols))
        return sparse.csr_matrix((np.concatenate(vals), coords), shape=sim.shape)

    def score(self, histories: list[list[int]]) -> np.ndarray:
        """[n, vocab] scores for users with these histories (oldest first)."""
        if self.sim is None:
            raise RuntimeError("ItemKNN.score before fit")
        recent = [h[-self.recent:] for h in histories]
        return np.asarray((self._users_by_items(recent) @ self.sim).todense(), dtype=np.float32)


def als_scores(spark, histories: list[list[int]], weights: list[list[float]],
               queries: list[int], vocab_size: int, *, rank: int = 32, iterations: int = 10,
               reg: float = 0.05, alpha: float = 10.0, seed: int = 13) -> np.ndarray:
    """Implicit-feedback ALS (Spark MLlib, Hu et al. 2008) fitted on the histories.

    histories[u] / weights[u]: user u's items and event weights (summed per item as the
    confidence); returns [len(queries), vocab] scores u . v for the users `queries` (indices
    into histories). Items ALS never saw score 0.
    """
    import pandas as pd
    from pyspark.ml.recommendation import ALS

    rows = {}
    for u, (items, ws) in enumerate(zip(histories, weights)):
        for i, w in zip(items, ws):
            rows[(u, i)] = rows.get((u, i), 0.0) + float(w)
    df = spark.createDataFrame(pd.DataFrame({  # through Arrow: no Python workers
        "user": pd.array([u for u, _ in rows], "int32"),
        "item": pd.array([i for _, i in rows], "int32"),
        "rating": pd.array(list(rows.values()), "float32")}))
    model = ALS(rank=rank, maxIter=iterations, regParam=reg, implicitPrefs=True, alpha=alpha,
                userCol="user", itemCol="item", ratingCol="rating", seed=seed,
                coldStartStrategy="drop").fit(df)
    users = {r.id: np.array(r.features) for r in model.userFactors.collect()}
    items = np.zeros((vocab_size, rank), dtype=np.float32)
    for r in model.itemFactors.collect():
        items[r.id] = r.features
    q = np.stack([users.get(u, np.zeros(rank)) for u in queries]).astype(np.float32)
    return q @ items.T
