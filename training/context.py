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

from training.steps import OOV, PURCHASE_CODE, Steps, days_between, to_datetime64, type_weights


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
    # items the catalog flags as not repurchasable; items in neither set are the data's call
    not_repurchasable: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Repurchase:
    """When the data says an item is rebought (`scoring.repurchase_*`): at least `min_buyers`
    bought it and at least `min_share` of them bought it on two or more days."""
    min_share: float = 0.1
    min_buyers: int = 3


def learned_repurchasable(buyers: np.ndarray, rebuyers: np.ndarray,
                          rule: Repurchase) -> np.ndarray:
    return (buyers >= rule.min_buyers) & (rebuyers >= rule.min_share * np.maximum(buyers, 1))


def repurchase_stats(steps: Steps, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(buyers, rebuyers, mean days between a rebuyer's purchases; 0 if none) per item, from
    the purchase steps (days in UTC): the reference of `jobs.context.repurchase_stats`."""
    buy = (steps.types == PURCHASE_CODE) & (steps.items > OOV)
    rows, items = steps.step_rows()[buy], steps.items[buy].astype(np.int64)
    day = steps.times[buy].astype("datetime64[D]").astype(np.int64)
    ui, inv = np.unique(rows * size + items, return_inverse=True)
    n_days = np.bincount(np.unique(inv.astype(np.int64) * (1 << 32) + day) >> 32,
                         minlength=len(ui))
    first = np.full(len(ui), np.iinfo(np.int64).max)
    last = np.full(len(ui), np.iinfo(np.int64).min)
    np.minimum.at(first, inv, day)
    np.maximum.at(last, inv, day)
    item = ui % size
    again = n_days >= 2
    buyers = np.bincount(item, minlength=size)
    rebuyers = np.bincount(item[again], minlength=size)
    per_gap = (last - first)[again] / np.maximum(n_days[again] - 1, 1)
    gap = np.bincount(item[again], weights=per_gap, minlength=size)
    return buyers, rebuyers, (gap / np.maximum(rebuyers, 1)).astype(np.float32)


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
    repurchasable: np.ndarray      # the catalog's flag, else learned from the data
    rebuy_share: np.ndarray        # share of the item's buyers who bought it on 2+ days
    rebuy_days: np.ndarray         # their mean days between purchases (0: nobody rebought)
    category: np.ndarray           # strings ("" if none)
    brand: np.ndarray
    title: np.ndarray
    log_price: np.ndarray
    price_known: np.ndarray        # the catalog has a price for the item
    sim: sparse.csr_matrix         # co-visitation: each item's top neighbours
    # item text (training/text.py), None when the night has none: unit vectors [V, dim]
    # and each item's nearest items by text
    text_vec: np.ndarray | None = None
    text_sim: sparse.csr_matrix | None = None
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


def catalog_arrays(vocab: np.ndarray, catalog: Catalog, buyers: np.ndarray,
                   rebuyers: np.ndarray, learned: np.ndarray) -> dict[str, np.ndarray]:
    """The catalog's fields laid out over the vocabulary; `never`: padding, unknown and
    unavailable items, which are never recommended; `repurchasable`: the catalog's flag
    where it has one, else what the data says (`learned`)."""
    ids = [str(v) for v in vocab]
    known = np.array([catalog.price.get(v) is not None for v in ids], dtype=bool)
    price = np.array([max(catalog.price.get(v, 0.0) or 0.0, 0.0) for v in ids])
    said_yes = np.array([v in catalog.repurchasable for v in ids], dtype=bool)
    said_no = np.array([v in catalog.not_repurchasable for v in ids], dtype=bool)
    return {
        "never": np.array([k < 2 or v not in catalog.available for k, v in enumerate(ids)]),
        "repurchasable": said_yes | (~said_no & learned),
        "rebuy_share": (rebuyers / np.maximum(buyers, 1)).astype(np.float32),
        "category": np.array([catalog.category.get(v) or "" for v in ids], dtype=object),
        "brand": np.array([catalog.brand.get(v) or "" for v in ids], dtype=object),
        "title": np.array([catalog.title.get(v) or "" for v in ids], dtype=object),
        "log_price": np.log1p(price).astype(np.float32), "price_known": known}


def build(steps: Steps, at: datetime, vocab: np.ndarray, catalog: Catalog,
          weights: dict[str, float], popularity_days: int, sim: sparse.csr_matrix,
          rule: Repurchase = Repurchase()) -> ItemContext:
    """The context from `steps` (only steps before `at`) and a co-visitation graph."""
    size = len(vocab)
    t_at = to_datetime64(at)
    first = np.full(size, t_at, dtype="datetime64[us]")
    np.minimum.at(first, steps.items, steps.times)
    buyers, rebuyers, rebuy_days = repurchase_stats(steps, size)
    return ItemContext(
        at=at, vocab=vocab, weights=weights,
        pop_1d=popularity(steps, at, 1, weights, size),
        pop_7d=popularity(steps, at, popularity_days, weights, size),
        item_users=item_user_counts(steps, size), n_users=len(steps),
        first_seen_days=days_between(t_at, first).astype(np.float32), sim=sim,
        rebuy_days=rebuy_days, **catalog_arrays(vocab, catalog, buyers, rebuyers,
                                                learned_repurchasable(buyers, rebuyers, rule)))


def from_tables(items, neighbours, at: datetime, vocab: np.ndarray, catalog: Catalog,
                weights: dict[str, float], n_users: int, listed=None) -> ItemContext:
    """The context from the context job's tables (pyarrow): per-item statistics (`item_id,
    pop_1d, pop_window, n_users, first_seen, buyers, rebuyers, rebuy_days,
    learned_repurchasable`) and co-visitation (`item_id, neighbour_id, sim`), laid out over
    `vocab`; items absent from them were not touched before `at`. With `listed` (`item_id`
    of the items on sale at `at`), the others are never recommended at `at` either."""
    import pandas as pd
    import pyarrow.compute as pc

    size = len(vocab)
    index = pd.Index(np.asarray(vocab, dtype=object))
    rows = index.get_indexer(items.column("item_id").to_pandas())
    known = rows >= 0

    def column(name, dtype):
        out = np.zeros(size, dtype=dtype)
        values = pc.fill_null(items.column(name), False if dtype is bool else 0).to_numpy(
            zero_copy_only=False)
        out[rows[known]] = values[known]
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
    buyers, rebuyers = column("buyers", np.int64), column("rebuyers", np.int64)
    arrays = catalog_arrays(vocab, catalog, buyers, rebuyers,
                            column("learned_repurchasable", bool))
    if listed is not None:
        on_sale = np.zeros(size, dtype=bool)
        at_rows = index.get_indexer(listed.column("item_id").to_pandas())
        on_sale[at_rows[at_rows >= 0]] = True
        arrays["never"] = arrays["never"] | ~on_sale
    return ItemContext(
        at=at, vocab=vocab, weights=weights, pop_1d=column("pop_1d", np.float32),
        pop_7d=column("pop_window", np.float32), item_users=column("n_users", np.int64),
        n_users=n_users, first_seen_days=days_between(t_at, first).astype(np.float32),
        sim=sim, rebuy_days=column("rebuy_days", np.float32), **arrays)
