"""Feature tables (Parquet) -> arrays for the sequence model, and the time-based holdout."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pyarrow.parquet as pq

from nightshelf import lake
from nightshelf import schema as S
from nightshelf.config import Config

PAD, OOV = "", "[UNK]"  # StringLookup's mask and out-of-vocabulary tokens


@dataclass
class Catalog:
    item_ids: list[str]
    title: dict[str, str]
    category: dict[str, str]
    available: set[str]
    repurchasable: set[str]
    brand: dict[str, str]
    price: dict[str, float]


@dataclass
class Sequences:
    """Users' item sequences as of the cutoff (oldest first)."""
    users: list[str]
    items: list[list[str]]
    types: list[list[str]]
    times: list[np.ndarray]           # datetime64[us] per step
    recent_purchases: list[list[str]]


@dataclass
class Holdout:
    """What users did after the split, and what they had done before it."""
    users: list[str]
    history: list[list[str]]          # steps before the split (model input)
    targets: list[set[str]]           # distinct items interacted with after the split
    bought_before: list[set[str]]     # purchases in the exclusion window before the split
    after: list[list[tuple[str, str]]]  # (item, event type) steps after the split


def load_catalog(cfg: Config, ds: str) -> Catalog:
    t = pq.read_table(lake.features(cfg, "items", ds),
                      columns=[S.ITEM, S.TITLE, S.CATEGORY, S.BRAND, S.PRICE, S.AVAILABLE,
                               S.REPURCHASABLE])
    d = t.to_pydict()
    return Catalog(
        item_ids=d[S.ITEM], title=dict(zip(d[S.ITEM], d[S.TITLE])),
        category=dict(zip(d[S.ITEM], d[S.CATEGORY])),
        available={i for i, a in zip(d[S.ITEM], d[S.AVAILABLE]) if a},
        repurchasable={i for i, r in zip(d[S.ITEM], d[S.REPURCHASABLE]) if r},
        brand=dict(zip(d[S.ITEM], d[S.BRAND])),
        price={i: float(p) for i, p in zip(d[S.ITEM], d[S.PRICE]) if p is not None})


def load_sequences(cfg: Config, ds: str) -> Sequences:
    t = pq.read_table(lake.features(cfg, "sequences", ds))
    d = t.to_pydict()
    times = [np.array(x, dtype="datetime64[us]") for x in
             t.column(S.SEQ_TIMES).to_pylist()]
    return Sequences(d[S.USER], d[S.SEQ_ITEMS], d[S.SEQ_TYPES], times, d[S.RECENT_PURCHASES])


def vocabulary(seqs: Sequences, catalog: Catalog) -> list[str]:
    """Item vocabulary: catalog items and items seen in sequences, sorted (deterministic)."""
    seen = {i for s in seqs.items for i in s}
    return sorted(seen | set(catalog.item_ids))


def split_time(cfg: Config, ds: str) -> datetime:
    return lake.cutoff(ds) - timedelta(days=cfg.model.holdout_days)


def holdout(seqs: Sequences, split: datetime, exclusion_days: int) -> tuple[Sequences, Holdout]:
    """Cut every sequence at `split`: before it trains the model, after it is the holdout."""
    t_split = np.datetime64(split.replace(tzinfo=None), "us")
    t_excl = t_split - np.timedelta64(exclusion_days, "D")
    before = Sequences([], [], [], [], [])
    hold = Holdout([], [], [], [], [])
    for u, items, types, times in zip(seqs.users, seqs.items, seqs.types, seqs.times):
        k = int(np.searchsorted(times, t_split, side="left"))
        if k == 0:
            continue
        bought = {i for i, ty, tm in zip(items[:k], types[:k], times[:k])
                  if ty == S.PURCHASE and tm >= t_excl}
        before.users.append(u)
        before.items.append(items[:k])
        before.types.append(types[:k])
        before.times.append(times[:k])
        before.recent_purchases.append(sorted(bought))
        if k < len(items):
            hold.users.append(u)
            hold.history.append(items[:k])
            hold.targets.append(set(items[k:]))
            hold.bought_before.append(bought)
            hold.after.append(list(zip(items[k:], types[k:])))
    return before, hold


def night_holdout(cfg: Config, ds: str) -> tuple[Catalog, Sequences, datetime, Sequences,
                                                 Holdout]:
    """The night's (catalog, sequences, split time, sequences before the split, holdout):
    built one way, so the gate scores the champion on exactly the challenger's holdout."""
    catalog, seqs, split = load_catalog(cfg, ds), load_sequences(cfg, ds), split_time(cfg, ds)
    before, hold = holdout(seqs, split, cfg.scoring.exclusion_window_days)
    return catalog, seqs, split, before, hold


def pad_left(rows: list[list[int]], length: int) -> np.ndarray:
    out = np.zeros((len(rows), length), dtype=np.int32)
    for r, row in enumerate(rows):
        row = row[-length:]
        if row:
            out[r, length - len(row):] = row
    return out


def next_item_arrays(seqs: Sequences, index: dict[str, int], max_len: int,
                     weights: dict[str, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs, targets, sample weights), each [n, max_len]: predict step t+1 from steps <= t.

    Targets are weighted by their event type (a purchase teaches more than a view); padded
    positions have weight 0.
    """
    xs, ys, ws = [], [], []
    for items, types in zip(seqs.items, seqs.types):
        ids = [index.get(i, 1) for i in items][-(max_len + 1):]
        tw = [weights.get(t, 1.0) for t in types][-(max_len + 1):]
        if len(ids) < 2:
            continue
        xs.append(ids[:-1])
        ys.append(ids[1:])
        ws.append(tw[1:])
    x, y = pad_left(xs, max_len), pad_left(ys, max_len)
    w = np.zeros_like(x, dtype=np.float32)
    for r, row in enumerate(ws):
        w[r, max_len - len(row):] = row
    w[y <= 1] = 0.0  # never learn to predict padding or out-of-vocabulary
    return x, y, w


def exclusion_mask(vocab: list[str], catalog: Catalog) -> np.ndarray:
    """True for vocabulary entries that may never be recommended (padding, OOV, unavailable)."""
    return np.array([i in (PAD, OOV) or i not in catalog.available for i in vocab])
