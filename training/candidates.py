"""Candidates and the ranker's features, as of a point in time.

Four sources propose items for a user, each from what was known at time `at` only:

- `sasrec`: the sequence model's next-item logits for the user's history;
- `covisit`: item-to-item co-visitation (`ItemKNN`) from the user's recent items;
- `popularity`: event-type-weighted interactions in the 7 days before `at`;
- `repeat`: the user's own items again (re-views, repurchases), by recency-decayed weight.

The union of each source's top items (sizes from `ranker.candidates`, after the same masks
as the published lists) is one user's candidate set. Every candidate gets one row of numeric
features (each source's score and rank, the user's past with the item, the item's
popularity, age and price, the user's activity and taste for the item's category and brand)
and the item's category, brand and title, which the ranker embeds itself.

The same code builds the ranker's training rows (as of the start of the label window), the
holdout evaluation (as of the split) and the night's lists (as of the cutoff), so training,
evaluation and serving cannot disagree on a feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

import numpy as np

from nightshelf import schema as S
from training.baselines import ItemKNN
from training.evaluate import NEG, item_user_counts, masked, popularity
from training.inputs import Catalog, Holdout, Sequences, exclusion_mask

SOURCES = ("sasrec", "covisit", "popularity", "repeat")
REPEAT_HALF_LIFE_DAYS = 3.0
MAX_DAYS = 60.0

NUMERIC = (
    [f"{s}_{f}" for s in SOURCES for f in ("score", "log_rank")]
    + ["covisit_last_item", "user_item_events", "user_item_days_since", "user_item_bought",
       "user_item_max_weight", "item_log_users", "item_log_pop_1d", "item_log_pop_7d",
       "item_age_days", "item_log_price", "user_log_steps", "user_log_items",
       "user_days_since_last", "user_category_share", "user_brand_share",
       "last_item_same_category"])

SasrecScorer = Callable[[list[list[str]]], np.ndarray]  # histories -> [n, vocab] logits


def _days(delta: np.ndarray) -> np.ndarray:
    return delta.astype("timedelta64[s]").astype(np.float64) / 86400.0


@dataclass
class Context:
    """What every source knows at time `at`: the users' sequences cut there, the item
    statistics counted from them, and the co-visitation graph fitted on them."""
    at: datetime
    seqs: Sequences
    vocab: list[str]
    index: dict[str, int]
    catalog: Catalog
    weights: dict[str, float]
    knn: ItemKNN
    pop_1d: np.ndarray
    pop_7d: np.ndarray
    item_users: np.ndarray
    first_seen_days: np.ndarray   # days between the item's first event and `at`
    # per vocabulary entry, from the catalog (the same for every batch of users)
    never: np.ndarray             # never recommended: padding, unknown, unavailable
    category: np.ndarray          # category (object array, "" if none)
    category_codes: np.ndarray    # category as an integer code
    brand_codes: np.ndarray
    log_price: np.ndarray


def context(seqs: Sequences, at: datetime, vocab: list[str], catalog: Catalog,
            weights: dict[str, float]) -> Context:
    """Item statistics and co-visitation from `seqs`, which must hold only steps before `at`."""
    index = {v: i for i, v in enumerate(vocab)}
    t_at = np.datetime64(at.replace(tzinfo=None), "us")
    first = np.full(len(vocab), t_at, dtype="datetime64[us]")
    histories = []
    for items, times in zip(seqs.items, seqs.times):
        idx = np.array([index.get(i, 1) for i in items], dtype=np.int64)
        np.minimum.at(first, idx, times)
        histories.append([i for i in idx.tolist() if i > 1])
    knn = ItemKNN(len(vocab)).fit(histories)
    category = np.array([catalog.category.get(i) or "" for i in vocab], dtype=object)
    brand = np.array([catalog.brand.get(i) or "" for i in vocab], dtype=object)
    price = np.array([max(catalog.price.get(i, 0.0), 0.0) for i in vocab])
    return Context(
        at, seqs, vocab, index, catalog, weights, knn,
        pop_1d=popularity(seqs, index, len(vocab), at, 1, weights),
        pop_7d=popularity(seqs, index, len(vocab), at, 7, weights),
        item_users=item_user_counts(seqs, index), first_seen_days=_days(t_at - first),
        never=exclusion_mask(vocab, catalog), category=category,
        category_codes=np.unique(category.astype(str), return_inverse=True)[1],
        brand_codes=np.unique(brand.astype(str), return_inverse=True)[1],
        log_price=np.log1p(price))


@dataclass
class CandidateSet:
    """One row per (user, candidate item): `rows` index the users asked for."""
    rows: np.ndarray              # [N] position in the user list passed to `generate`
    items: np.ndarray             # [N] vocabulary index
    numeric: np.ndarray           # [N, len(NUMERIC)] float32
    category: np.ndarray          # [N] str
    brand: np.ndarray             # [N] str
    title: np.ndarray             # [N] str

    def __len__(self) -> int:
        return len(self.rows)

    def inputs(self) -> dict[str, np.ndarray]:
        """The ranker's named inputs."""
        return {"numeric": self.numeric, "category": self.category[:, None],
                "brand": self.brand[:, None], "title": self.title[:, None]}

    def select(self, keep: np.ndarray) -> "CandidateSet":
        return CandidateSet(self.rows[keep], self.items[keep], self.numeric[keep],
                            self.category[keep], self.brand[keep], self.title[keep])


def _ranks(scores: np.ndarray) -> np.ndarray:
    """Rank (0 = best) of every column within its row."""
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(scores.shape[1])[None, :], axis=1)
    return ranks


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Boolean [n, vocab]: each row's k best columns that are not masked out."""
    k = min(k, scores.shape[1])
    out = np.zeros(scores.shape, dtype=bool)
    if k <= 0:
        return out
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    np.put_along_axis(out, part, True, axis=1)
    return out & (scores > NEG / 2)


def generate(ctx: Context, rows: list[int], sasrec: SasrecScorer | None,
             sizes: dict[str, int], batch_size: int = 512) -> CandidateSet:
    """Candidates and features for the users at positions `rows` of `ctx.seqs`."""
    parts = [_generate_batch(ctx, rows[s:s + batch_size], s, sasrec, sizes)
             for s in range(0, len(rows), batch_size)]
    if not parts:
        return CandidateSet(np.zeros(0, np.int64), np.zeros(0, np.int64),
                            np.zeros((0, len(NUMERIC)), np.float32), *(np.zeros(0, str),) * 3)
    return concat(parts)


def _generate_batch(ctx: Context, rows: list[int], offset: int, sasrec: SasrecScorer | None,
                    sizes: dict[str, int]) -> CandidateSet:
    seqs, vocab, index, cat = ctx.seqs, ctx.vocab, ctx.index, ctx.catalog
    n, v = len(rows), len(vocab)
    t_at = np.datetime64(ctx.at.replace(tzinfo=None), "us")
    histories = [seqs.items[r] for r in rows]
    bought = [set(seqs.recent_purchases[r]) for r in rows]

    def mask(scores):
        return masked(scores, bought, index, ctx.never, cat.repurchasable)

    # the user's own past with each item
    events = np.zeros((n, v), np.float32)
    decayed = np.zeros((n, v), np.float32)
    days_since = np.full((n, v), MAX_DAYS, np.float32)
    was_bought = np.zeros((n, v), np.float32)
    max_weight = np.zeros((n, v), np.float32)
    cat_share = np.zeros((n, v), np.float32)
    brand_share = np.zeros((n, v), np.float32)
    last_item = np.ones(n, np.int64)
    user_steps = np.zeros(n, np.float32)
    user_items = np.zeros(n, np.float32)
    user_idle = np.full(n, MAX_DAYS, np.float32)
    for b, r in enumerate(rows):
        idx = np.array([index.get(i, 1) for i in seqs.items[r]], dtype=np.int64)
        if not len(idx):
            continue
        w = np.array([ctx.weights.get(t, 1.0) for t in seqs.types[r]], np.float32)
        age = np.minimum(_days(t_at - seqs.times[r]), MAX_DAYS).astype(np.float32)
        np.add.at(events[b], idx, 1.0)
        np.add.at(decayed[b], idx, w * np.power(0.5, age / REPEAT_HALF_LIFE_DAYS))
        np.minimum.at(days_since[b], idx, age)
        np.maximum.at(max_weight[b], idx, w)
        buys = np.array([t == S.PURCHASE for t in seqs.types[r]])
        was_bought[b, idx[buys]] = 1.0
        last_item[b] = idx[-1]
        user_steps[b], user_items[b], user_idle[b] = len(idx), len(set(idx.tolist())), age[-1]
        for shares, codes in ((cat_share, ctx.category_codes), (brand_share, ctx.brand_codes)):
            per = np.bincount(codes[idx], weights=w, minlength=codes.max() + 1)
            shares[b] = per[codes] / max(per.sum(), 1e-9)
    events[:, :2] = decayed[:, :2] = 0.0

    scores = {
        "sasrec": (np.asarray(sasrec(histories), np.float32) if sasrec is not None
                   else np.zeros((n, v), np.float32)),
        "covisit": ctx.knn.score([[i for i in (index.get(x, 1) for x in h) if i > 1]
                                  for h in histories]),
        "popularity": np.tile(np.log1p(ctx.pop_7d), (n, 1)),
        "repeat": decayed,
    }
    if sasrec is not None:  # relative to the user's best item: comparable across users
        scores["sasrec"] = scores["sasrec"] - scores["sasrec"].max(axis=1, keepdims=True)
    chosen = np.zeros((n, v), dtype=bool)
    per_source = {}  # [users, vocab]
    for name in SOURCES:
        s = mask(scores[name])
        if name == "repeat":
            s = np.where(decayed > 0, s, NEG)
        if name != "sasrec" or sasrec is not None:
            chosen |= _top(s, sizes.get(name, 0))
        per_source[f"{name}_score"] = scores[name]
        per_source[f"{name}_log_rank"] = np.log1p(_ranks(s)).astype(np.float32)
    b_idx, i_idx = np.nonzero(chosen)

    per_pair = {  # [users, vocab]
        "covisit_last_item": ctx.knn.sim[last_item].toarray(),
        "user_item_events": np.log1p(events),
        "user_item_days_since": days_since,
        "user_item_bought": was_bought,
        "user_item_max_weight": max_weight,
        "user_category_share": cat_share,
        "user_brand_share": brand_share,
        "last_item_same_category": (ctx.category[None, :] == ctx.category[last_item][:, None]),
    }
    per_item = {  # [vocab]
        "item_log_users": np.log1p(ctx.item_users.astype(np.float32)),
        "item_log_pop_1d": np.log1p(ctx.pop_1d),
        "item_log_pop_7d": np.log1p(ctx.pop_7d),
        "item_age_days": np.minimum(ctx.first_seen_days, MAX_DAYS),
        "item_log_price": ctx.log_price,
    }
    per_user = {"user_log_steps": np.log1p(user_steps), "user_log_items": np.log1p(user_items),
                "user_days_since_last": user_idle}  # [users]
    column = {name: f[b_idx, i_idx] for name, f in {**per_source, **per_pair}.items()}
    column.update({name: f[i_idx] for name, f in per_item.items()})
    column.update({name: f[b_idx] for name, f in per_user.items()})
    cols = [column[name] for name in NUMERIC]
    numeric = np.stack(cols, axis=1).astype(np.float32)
    items = [vocab[i] for i in i_idx]
    return CandidateSet(
        rows=b_idx.astype(np.int64) + offset, items=i_idx.astype(np.int64), numeric=numeric,
        category=np.array([cat.category.get(i) or "" for i in items], dtype=str),
        brand=np.array([cat.brand.get(i) or "" for i in items], dtype=str),
        title=np.array([cat.title.get(i) or "" for i in items], dtype=str))


def concat(parts: list[CandidateSet]) -> CandidateSet:
    """One candidate set from several (their `rows` must not collide)."""
    return CandidateSet(*(np.concatenate(cols) for cols in zip(*(
        (p.rows, p.items, p.numeric, p.category, p.brand, p.title) for p in parts))))


def labels(cands: CandidateSet, after: list[list[tuple[str, str]]], vocab: list[str],
           weights: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """(label, sample weight) per candidate: 1 if the user touched the item in the label
    window, weighted by the strongest event type there (a purchase counts 5 views); 0 with
    weight 1 otherwise. `after[row]` lists the (item, type) steps of the user at `row`."""
    best: list[dict[str, float]] = []
    for steps in after:
        d: dict[str, float] = {}
        for item, etype in steps:
            d[item] = max(d.get(item, 0.0), weights.get(etype, 1.0))
        best.append(d)
    w = np.array([best[r].get(vocab[i], 0.0) for r, i in zip(cands.rows, cands.items)],
                 dtype=np.float32)
    return (w > 0).astype(np.float32), np.where(w > 0, w, 1.0).astype(np.float32)


def score_matrix(cands: CandidateSet, scores: np.ndarray, n_users: int,
                 vocab_size: int) -> np.ndarray:
    """[n_users, vocab] with each candidate's score and NEG everywhere else."""
    out = np.full((n_users, vocab_size), NEG, dtype=np.float32)
    out[cands.rows, cands.items] = scores
    return out


def split_time(split: datetime, label_days: int) -> datetime:
    """Start of the ranker's label window: `label_days` before the holdout split."""
    return split - timedelta(days=label_days)


def holdout_rows(ctx: Context, hold: Holdout) -> list[int]:
    """Positions in `ctx.seqs` of the holdout's users."""
    row = {u: r for r, u in enumerate(ctx.seqs.users)}
    return [row[u] for u in hold.users]
