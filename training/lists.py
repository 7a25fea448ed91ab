"""Each user's top-K items from any kind of model, under the masks of the published lists.

A list is a row of a [n, K] array of vocabulary indices, best first, padded with -1, with
the matching scores. Every kind of model ends here, from its own (user, item, score)
entries: the ranker (its candidates), SASRec alone (a batch's logits), co-visitation,
popularity and buy-again. Nothing is ever a users x catalog array; top-K is a partial
selection.

Lists that come out shorter than K (a user with few co-visited items, a ranker with few
candidates) are filled with the most popular items the user may get, as the published
lists are, so every model is compared on full lists.
"""

from __future__ import annotations

import numpy as np

from training.baselines import recent_scores
from training.candidates import (
    COVISIT_RECENT,
    NEG,
    allowed,
    masked_keys,
    per_row,
    recent_items,
)
from training.context import ItemContext
from training.steps import OOV, PURCHASE_CODE, Steps, days_between, grouped_rank
from training.topk import masked_top


def from_pairs(n: int, rows: np.ndarray, items: np.ndarray, scores: np.ndarray,
               k: int) -> tuple[np.ndarray, np.ndarray]:
    """([n, k] items, [n, k] scores): each row's k best entries, padded with -1 / NEG."""
    ranks = grouped_rank(rows, scores, items)
    keep = ranks < k
    ranked = np.full((n, k), -1, dtype=np.int64)
    out = np.full((n, k), NEG, dtype=np.float32)
    ranked[rows[keep], ranks[keep]] = items[keep]
    out[rows[keep], ranks[keep]] = scores[keep]
    return ranked, out


def from_dense(ctx: ItemContext, steps: Steps, scores: np.ndarray,
               k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of a [batch, V] score array (a model's logits for one batch of users)."""
    n = len(steps)
    scores = np.asarray(scores, np.float32)
    masked = per_row(masked_keys(ctx, steps), n, ctx.size)
    top, _, _ = masked_top(scores, min(k, ctx.size), ctx.never, masked)
    ok = top >= 0
    rows = np.repeat(np.arange(n), top.shape[1])[ok.ravel()]
    items = top[ok]
    return from_pairs(n, rows, items, scores[rows, items], k)


def popular(ctx: ItemContext, steps: Steps, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The most popular items each user may get (recent purchases left out)."""
    n = len(steps)
    head = ctx.pop_order[:k + np.diff(steps.bought_ptr).max(initial=0)]
    rows, items = np.repeat(np.arange(n), len(head)), np.tile(head, n)
    ok = allowed(ctx, masked_keys(ctx, steps), rows, items)
    return from_pairs(n, rows[ok], items[ok], np.log1p(ctx.pop_7d[items[ok]]), k)


def covisited(ctx: ItemContext, steps: Steps, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Item-kNN: the items most co-visited with the user's recent items."""
    rr, ri = recent_items(steps, COVISIT_RECENT)
    cov = recent_scores(ctx.sim, rr, ri, len(steps)).tocoo()
    rows, items = cov.row.astype(np.int64), cov.col.astype(np.int64)
    ok = allowed(ctx, masked_keys(ctx, steps), rows, items) & (cov.data > 0)
    return from_pairs(len(steps), rows[ok], items[ok], cov.data[ok].astype(np.float32), k)


BUY_AGAIN_HALF_LIFE_DAYS = 30.0


def buy_again(ctx: ItemContext, steps: Steps, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Buy again: the user's own purchases, each purchase counting 0.5^(age / 30 days), so
    items bought often and lately come first (the standard baseline where baskets repeat);
    only what the masks allow (an item that is not rebought stays out inside the exclusion
    window)."""
    buy = (steps.types == PURCHASE_CODE) & (steps.items > OOV)
    rows, items = steps.step_rows()[buy], steps.items[buy].astype(np.int64)
    age = days_between(ctx.t_at, steps.times[buy])
    keys, inv = np.unique(rows * ctx.size + items, return_inverse=True)
    score = np.bincount(inv, weights=np.power(0.5, age / BUY_AGAIN_HALF_LIFE_DAYS),
                        minlength=len(keys)).astype(np.float32)
    r, i = keys // ctx.size, keys % ctx.size
    ok = allowed(ctx, masked_keys(ctx, steps), r, i)
    return from_pairs(len(steps), r[ok], i[ok], score[ok], k)


def fill(ranked: np.ndarray, scores: np.ndarray, fallback: np.ndarray,
         fallback_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pad each short list with the fallback list's items it lacks, in order; their scores
    sit just below the list's last score, in the fallback's order."""
    n, k = ranked.shape
    if (ranked >= 0).all():
        return ranked, scores
    both = np.concatenate([ranked, fallback], axis=1)
    dup = np.zeros_like(both, dtype=bool)
    for j in range(k, both.shape[1]):  # K columns: a fallback item already in the list
        dup[:, j] = (both[:, :k] == both[:, j:j + 1]).any(axis=1)
    present = (both >= 0) & ~dup
    order = np.argsort(~present, axis=1, kind="stable")[:, :k]
    out = np.take_along_axis(both, order, axis=1)
    own = np.where(ranked >= 0, scores, np.inf).min(axis=1, keepdims=True)
    own = np.where(np.isfinite(own), own, 0.0)
    pad_scores = own - 1.0 - np.arange(both.shape[1])[None, :] * 1e-3
    all_scores = np.concatenate([scores, np.broadcast_to(pad_scores[:, k:], fallback.shape)],
                                axis=1)
    out_scores = np.take_along_axis(all_scores, order, axis=1).astype(np.float32)
    filled = np.take_along_axis(present, order, axis=1)
    return np.where(filled, out, -1), np.where(filled, out_scores, NEG)
