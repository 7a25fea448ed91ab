"""Feature tables (Parquet) -> the catalog, the vocabulary, users' steps and the holdout."""

from __future__ import annotations

from datetime import datetime
from functools import partial

import numpy as np

from nightshelf import lake
from nightshelf import schema as S
from nightshelf.config import Config, MissingInput
from training.context import Catalog, Repurchase, from_tables
from training.steps import Steps, from_arrow, type_weights

PAD, OOV = "", "[UNK]"  # StringLookup's mask and out-of-vocabulary tokens


def load_catalog(cfg: Config, ds: str) -> Catalog:
    t = lake.read_parquet(lake.features(cfg, "items", ds), needs=f"the features job for ds={ds}",
                          columns=[S.ITEM, S.TITLE, S.CATEGORY, S.BRAND, S.PRICE, S.AVAILABLE,
                                   S.REPURCHASABLE])
    d = t.to_pydict()
    return Catalog(
        item_ids=d[S.ITEM], title=dict(zip(d[S.ITEM], d[S.TITLE])),
        category=dict(zip(d[S.ITEM], d[S.CATEGORY])),
        available={i for i, a in zip(d[S.ITEM], d[S.AVAILABLE]) if a},
        repurchasable={i for i, r in zip(d[S.ITEM], d[S.REPURCHASABLE]) if r},
        not_repurchasable={i for i, r in zip(d[S.ITEM], d[S.REPURCHASABLE]) if r is False},
        brand=dict(zip(d[S.ITEM], d[S.BRAND])),
        price={i: float(p) for i, p in zip(d[S.ITEM], d[S.PRICE]) if p is not None})


def sequences_table(cfg: Config, ds: str):
    return lake.read_parquet(lake.features(cfg, "sequences", ds),
                             needs=f"the features job for ds={ds}")


def load_steps(sequences, vocab: np.ndarray) -> Steps:
    import pyarrow as pa

    return from_arrow(sequences, pa.array(list(vocab), pa.string()))


def pad_left(rows: list[list[int]], length: int) -> np.ndarray:
    out = np.zeros((len(rows), length), dtype=np.int32)
    for r, row in enumerate(rows):
        row = row[-length:]
        if row:
            out[r, length - len(row):] = row
    return out


def next_item_arrays(steps: Steps, max_len: int, weights: dict[str, float]
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs, targets, sample weights), each [n, max_len]: predict step t+1 from steps <= t,
    for the users with two or more steps.

    Targets are weighted by their event type (a purchase teaches more than a view); padded
    positions have weight 0.
    """
    users = steps.take(np.nonzero(steps.lengths >= 2)[0])
    ids = users.padded(max_len + 1)
    tw = users.padded(max_len + 1, type_weights(weights)[users.types])
    x, y, w = ids[:, :-1], ids[:, 1:].copy(), tw[:, 1:].astype(np.float32)
    y[x == 0] = 0  # a user's first item has nothing before it to be predicted from
    w[y <= 1] = 0.0  # never learn to predict padding or out-of-vocabulary
    return np.ascontiguousarray(x), np.ascontiguousarray(y), np.ascontiguousarray(w)


def night_vocab(cfg: Config, ds: str) -> np.ndarray:
    """The night's vocabulary as the context job wrote it, with padding and unknown first."""
    t = lake.read_parquet(lake.context(cfg, ds, "vocab"), columns=[S.ITEM])
    if t is None:
        raise MissingInput(f"no vocabulary in {lake.context(cfg, ds, 'vocab')}: run the "
                           f"context job for ds={ds} first")
    return np.array([PAD, OOV] + t.column(S.ITEM).to_pylist(), dtype=object)


def points(cfg: Config, ds: str) -> dict[str, dict]:
    """{point: {"at": datetime, "users": n}} as the context job wrote them."""
    data = lake.read_json(lake.context(cfg, ds, "points.json"))
    if data is None:
        raise MissingInput(f"{lake.context(cfg, ds, 'points.json')} is missing: run the "
                           f"context job for ds={ds} first")
    return {k: {"at": datetime.fromisoformat(v["at"]), "users": v["users"]}
            for k, v in data.items()}


def load_context(cfg: Config, ds: str, point: str, vocab: np.ndarray, catalog: Catalog):
    """The item context of night `ds` as of `point`, from the context job's tables."""
    where = points(cfg, ds)[point]
    needs = f"the context job for ds={ds}"
    table = partial(lake.context, cfg, ds, point)
    items = lake.read_parquet(table(lake.CONTEXT_ITEMS), needs=needs)
    neighbours = lake.read_parquet(table(lake.CONTEXT_NEIGHBOURS), needs=needs)
    # the items on sale then (a night whose context job predates it: the night's catalog)
    listed = lake.read_parquet(table(lake.CONTEXT_LISTED))
    ctx = from_tables(items, neighbours, where["at"], vocab, catalog, cfg.events.weights,
                      where["users"], listed)
    text = load_text(cfg, ds, vocab)
    if text is not None:
        ctx.text_vec, ctx.text_sim = text.vectors, text.sim
    return ctx


def text_path(cfg: Config, ds: str):
    return lake.context(cfg, ds, "text.npz")


def load_text(cfg: Config, ds: str, vocab: np.ndarray):
    """The night's item text over `vocab` (None with `text.enabled` off, or when the
    context job wrote none)."""
    if not cfg.text.enabled:
        return None
    from training.text import ItemText

    text = ItemText.load(text_path(cfg, ds))
    if text is not None and len(text.vectors) != len(vocab):
        raise MissingInput(f"{text_path(cfg, ds)} has {len(text.vectors)} items, the "
                           f"vocabulary {len(vocab)}: run the context job for ds={ds} again")
    return text


def repurchase_rule(cfg: Config) -> Repurchase:
    return Repurchase(cfg.scoring.repurchase_min_share, cfg.scoring.repurchase_min_buyers)
