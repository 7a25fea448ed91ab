"""Co-visitation as a sparse matrix product, one block of items at a time.

With X the users x items indicator of who touched what before a point in time, the
co-occurrence counts are C = XᵀX and a block of its rows, items [lo, hi), is X[:, lo:hi]ᵀ X.
A worker that holds X (events-sized: one entry per user and item touched, never users x
catalog) computes any block's neighbours alone, so the night's context job spreads the
blocks over the cluster and no pair of items is ever shuffled; each block keeps only its
items' top neighbours. The similarity is `training.baselines.ItemKNN`'s:

    sim(i, j) = C[i, j] / (sqrt(C[i, i] * C[j, j]) + shrink)

ties going to the lower item index, which is the lower item id (items are indexed in id
order).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from scipy import sparse

POINT, ITEM, NEIGHBOUR, SIM = "point", "item_id", "neighbour_id", "sim"
SCHEMA = pa.schema([(POINT, pa.string()), (ITEM, pa.string()), (NEIGHBOUR, pa.string()),
                    (SIM, pa.float32())])


@dataclass
class Touches:
    """Who touched what, each user's first touch of an item tagged with the first point in
    time it counts at: user u's items are `items[indptr[u]:indptr[u + 1]]` (indices into
    `ids`, sorted) and `buckets` the index into `points` (sorted by time) of the first point
    the touch is before."""

    indptr: np.ndarray
    items: np.ndarray
    buckets: np.ndarray
    ids: pa.Array
    points: tuple[str, ...]
    _at: tuple = field(default=(), repr=False, compare=False)

    def matrices(self, point: int) -> tuple[sparse.csr_matrix, sparse.csr_matrix, np.ndarray]:
        """X, Xᵀ (both CSR) and each item's user count as of point `point`; the last point
        asked for is kept, as a worker runs a point's blocks one after the other."""
        if not self._at or self._at[0] != point:
            keep = self.buckets <= point
            kept = np.concatenate([[0], np.cumsum(keep)])  # entries kept before each one
            x = sparse.csr_matrix((np.ones(kept[-1], np.float32), self.items[keep],
                                   kept[self.indptr]),
                                  shape=(len(self.indptr) - 1, len(self.ids)))
            x.sort_indices()
            xt = x.T.tocsr()
            self._at = (point, x, xt, np.diff(xt.indptr).astype(np.float64))
        return self._at[1:]


def block_neighbours(x: sparse.csr_matrix, xt: sparse.csr_matrix, n: np.ndarray, lo: int,
                     hi: int, k: int, shrink: float):
    """(items, neighbours, sims) of items [lo, hi): each one's k most similar other items,
    best first (ties: lower index first)."""
    co = (xt[lo:hi] @ x).tocoo()
    rows = co.row.astype(np.int64) + lo
    cols = co.col.astype(np.int64)
    keep = rows != cols
    rows, cols = rows[keep], cols[keep]
    sims = (co.data[keep].astype(np.float64) / (np.sqrt(n[rows] * n[cols]) + shrink)
            ).astype(np.float32)
    order = np.lexsort((cols, -sims, rows))
    ranked = rows[order]
    keep = order[np.arange(len(order)) - np.searchsorted(ranked, ranked, side="left") < k]
    return rows[keep], cols[keep], sims[keep]


def blocks(n_items: int, size: int) -> int:
    return -(-n_items // size)


def neighbours_of_blocks(touches, n_blocks: int, size: int, k: int, shrink: float, batches):
    """The `mapInArrow` worker: each input row is a task number, point-major (so a worker
    builds a point's X once for all its blocks); yields the task's (point, item_id,
    neighbour_id, sim) rows. `touches` is a Spark broadcast of `Touches`."""
    t = touches.value
    for batch in batches:
        for task in batch.column(0).to_pylist():
            point, block = divmod(task, n_blocks)
            x, xt, n = t.matrices(point)
            lo = block * size
            items, neighbours, sims = block_neighbours(x, xt, n, lo, min(lo + size, len(t.ids)),
                                                       k, shrink)
            yield pa.RecordBatch.from_arrays(
                [pa.array([t.points[point]] * len(items), pa.string()), t.ids.take(items),
                 t.ids.take(neighbours), pa.array(sims, pa.float32())], schema=SCHEMA)
