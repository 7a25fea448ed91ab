"""What the night knows about every item at a point in time: catalog-sized, never per user.

`ItemContext` holds, for each vocabulary entry, the catalog's fields as arrays, popularity
(the one definition: event-type-weighted interactions in the `days` before a time), how many
users touched the item, when it was first seen, which items may never be recommended, and
the co-visitation graph (each item's top neighbours). Every per-user computation (candidates,
their features, the baselines, serving) reads it; it is the same for every batch of users,
so a Spark job broadcasts it once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from scipy import sparse

from training.steps import OOV, Steps, days_between, to_datetime64, type_weights


@dataclass
class Catalog:
    """The night's catalog snapshot (catalog-sized dictionaries keyed by item id)."""
    item_ids: list[str]
    title: dict[str, str]
    category: dict[str, str]
    available: set[str]
    repurchasable: set[str]
    brand: dict[str, str]
    price: dict[str, float]


def popularity(steps: Steps, until: datetime, days: int, weights: dict[str, float],
               size: int) -> np.ndarray:
    """Item scores: event-type-weighted interactions in the `days` before `until`."""
    since = to_datetime64(until - timedelta(days=days))
    t_until = to_datetime64(until)
    keep = (steps.times >= since) & (steps.times < t_until) & (steps.items > OOV)
    return np.bincount(steps.items[keep], weights=type_weights(weights)[steps.types[keep]],
                       minlength=size).astype(np.float32)


def item_user_counts(steps: Steps, size: int) -> np.ndarray:
    """How many users touched each vocabulary item."""
    keys = np.unique(steps.step_rows() * size + steps.items)
    return np.bincount((keys % size).astype(np.int64), minlength=size).astype(np.int64)


def codes(values: np.ndarray) -> np.ndarray:
    return np.unique(values.astype(str), return_inverse=True)[1].astype(np.int64)


@dataclass
class ItemContext:
    """Item-level state as of `at` over the vocabulary `vocab` (index 0 padding, 1 unknown)."""
    at: datetime
    vocab: np.ndarray              # [V] item ids
    weights: dict[str, float]
    pop_1d: np.ndarray
    pop_7d: np.ndarray             # popularity over the configured window
    item_users: np.ndarray
    n_users: int
    first_seen_days: np.ndarray    # days between the item's first step and `at`
    never: np.ndarray              # never recommended: padding, unknown, unavailable
    repurchasable: np.ndarray
    category: np.ndarray           # strings ("" if none)
    brand: np.ndarray
    title: np.ndarray
    log_price: np.ndarray
    sim: sparse.csr_matrix         # co-visitation: each item's top neighbours
    category_codes: np.ndarray = field(init=False)
    brand_codes: np.ndarray = field(init=False)
    pop_order: np.ndarray = field(init=False)  # recommendable items, most popular first
    pop_rank: np.ndarray = field(init=False)   # rank in pop_order (len(pop_order) if absent)
    sim_keys: np.ndarray = field(init=False)   # row * V + col of the graph's entries, sorted
    sim_vals: np.ndarray = field(init=False)

    def __post_init__(self):
        self.category_codes, self.brand_codes = codes(self.category), codes(self.brand)
        score = np.log1p(self.pop_7d)
        order = np.lexsort((np.arange(self.size), -score))
        self.pop_order = order[~self.never[order]]
        self.pop_rank = np.full(self.size, len(self.pop_order), dtype=np.int64)
        self.pop_rank[self.pop_order] = np.arange(len(self.pop_order))
        coo = self.sim.tocoo()
        keys = coo.row.astype(np.int64) * self.size + coo.col
        order = np.argsort(keys)
        self.sim_keys, self.sim_vals = keys[order], coo.data[order].astype(np.float32)

    @property
    def size(self) -> int:
        return len(self.vocab)

    @property
    def t_at(self) -> np.datetime64:
        return to_datetime64(self.at)


def catalog_arrays(vocab: np.ndarray, catalog: Catalog) -> dict[str, np.ndarray]:
    """The catalog's fields laid out over the vocabulary; `never`: padding, unknown and
    unavailable items, which are never recommended."""
    ids = [str(v) for v in vocab]
    price = np.array([max(catalog.price.get(v, 0.0) or 0.0, 0.0) for v in ids])
    return {
        "never": np.array([k < 2 or v not in catalog.available for k, v in enumerate(ids)]),
        "repurchasable": np.array([v in catalog.repurchasable for v in ids]),
        "category": np.array([catalog.category.get(v) or "" for v in ids], dtype=object),
        "brand": np.array([catalog.brand.get(v) or "" for v in ids], dtype=object),
        "title": np.array([catalog.title.get(v) or "" for v in ids], dtype=object),
        "log_price": np.log1p(price).astype(np.float32)}


def build(steps: Steps, at: datetime, vocab: np.ndarray, catalog: Catalog,
          weights: dict[str, float], popularity_days: int, sim: sparse.csr_matrix
          ) -> ItemContext:
    """The context from `steps` (only steps before `at`) and a co-visitation graph."""
    size = len(vocab)
    t_at = to_datetime64(at)
    first = np.full(size, t_at, dtype="datetime64[us]")
    np.minimum.at(first, steps.items, steps.times)
    return ItemContext(
        at=at, vocab=vocab, weights=weights,
        pop_1d=popularity(steps, at, 1, weights, size),
        pop_7d=popularity(steps, at, popularity_days, weights, size),
        item_users=item_user_counts(steps, size), n_users=len(steps),
        first_seen_days=days_between(t_at, first).astype(np.float32), sim=sim,
        **catalog_arrays(vocab, catalog))


def from_tables(items, neighbours, at: datetime, vocab: np.ndarray, catalog: Catalog,
                weights: dict[str, float], n_users: int) -> ItemContext:
    """The context from the context job's tables (pyarrow): per-item statistics (`item_id,
    pop_1d, pop_window, n_users, first_seen`) and co-visitation (`item_id, neighbour_id,
    sim`), laid out over `vocab`; items absent from them were not touched before `at`."""
    import pandas as pd

    size = len(vocab)
    index = pd.Index(np.asarray(vocab, dtype=object))
    rows = index.get_indexer(items.column("item_id").to_pandas())
    known = rows >= 0

    def column(name, dtype):
        out = np.zeros(size, dtype=dtype)
        out[rows[known]] = items.column(name).to_numpy(zero_copy_only=False)[known]
        return out

    t_at = to_datetime64(at)
    first = np.full(size, t_at, dtype="datetime64[us]")
    seen = items.column("first_seen").cast("timestamp[us]").to_numpy(zero_copy_only=False)
    first[rows[known]] = seen[known].astype("datetime64[us]")
    i = index.get_indexer(neighbours.column("item_id").to_pandas())
    j = index.get_indexer(neighbours.column("neighbour_id").to_pandas())
    ok = (i >= 0) & (j >= 0)
    sim = sparse.csr_matrix((neighbours.column("sim").to_numpy()[ok].astype(np.float32),
                             (i[ok], j[ok])), shape=(size, size))
    return ItemContext(
        at=at, vocab=vocab, weights=weights, pop_1d=column("pop_1d", np.float32),
        pop_7d=column("pop_window", np.float32), item_users=column("n_users", np.int64),
        n_users=n_users, first_seen_days=days_between(t_at, first).astype(np.float32),
        sim=sim, **catalog_arrays(vocab, catalog))
