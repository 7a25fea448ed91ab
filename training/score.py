"""A batch of users' published rows: top-N items, scores and reasons (`jobs/score.py` maps
it over every user on Spark).

Memory stays bounded by `scoring.batch_size` users at a time plus catalog-sized state: a
batch's candidates (or co-visited / popular items) and its top-N by partial selection.
Never recommended: padding/unknown ids, items not
in tonight's catalog or unavailable, and items the user bought inside the exclusion window
unless the catalog marks them repurchasable. Short lists are filled with popular items.
"""

from __future__ import annotations

import logging

import numpy as np

from nightshelf import schema as S
from nightshelf.config import Config
from nightshelf.records import GateRecord
from training import lists
from training.context import ItemContext
from training.gate import POPULARITY, SERVABLE_BASELINES
from training.steps import OOV, Steps, lookup

log = logging.getLogger(__name__)

REASON_HISTORY = 10
VERBS = {S.VIEW: "viewed", S.ADD_TO_CART: "added to cart", S.PURCHASE: "bought",
         S.FAVORITE: "saved"}


def schema():
    import pyarrow as pa

    return pa.schema([(S.USER, pa.string()), (S.RANK, pa.int32()), (S.ITEM, pa.string()),
                      (S.SCORE, pa.float32()), (S.REASON, pa.string()),
                      (S.MODEL_VERSION, pa.string()), (S.RUN_ID, pa.string())])


def recent_history(steps: Steps, n: int) -> tuple[np.ndarray, np.ndarray]:
    """([users, n] items, [users, n] type codes): each user's last `n` known steps, most
    recent first, padded with -1."""
    rows, items = steps.step_rows(), steps.items.astype(np.int64)
    known = items > OOV
    rows, items, types = rows[known], items[known], steps.types[known]
    ends = np.cumsum(np.bincount(rows, minlength=len(steps)))
    back = ends[rows] - np.arange(len(rows)) - 1  # 0 = the most recent
    keep = back < n
    hist = np.full((len(steps), n), -1, np.int64)
    kinds = np.zeros((len(steps), n), np.int8)
    hist[rows[keep], back[keep]] = items[keep]
    kinds[rows[keep], back[keep]] = types[keep]
    return hist, kinds


def reasons(ctx: ItemContext, steps: Steps, ranked: np.ndarray, similar: bool) -> list[list]:
    """Why each item of each list: "you <verb> it recently" for an item of the user's own,
    else the user's recent item most co-visited with it, else its category (and with
    `similar` False, or no history, its category's popularity). None for padding."""
    hist, kinds = recent_history(steps, REASON_HISTORY)
    n, k = ranked.shape
    rec = np.maximum(ranked, 0)
    own = (ranked[:, :, None] == hist[:, None, :]) & (hist[:, None, :] >= 0)
    sims = lookup(ctx.sim_keys, ctx.sim_vals,
                  (rec[:, :, None] * ctx.size + np.maximum(hist, 0)[:, None, :]).ravel(),
                  0.0).reshape(n, k, hist.shape[1])
    sims = np.where(hist[:, None, :] >= 0, sims, -np.inf)
    best = np.where(own.any(axis=2), own.argmax(axis=2), sims.argmax(axis=2))
    best_sim = np.take_along_axis(sims, best[:, :, None], axis=2)[:, :, 0]
    has_history = hist[:, 0] >= 0
    types = [VERBS.get(t, "viewed") for t in S.EVENT_TYPES]
    out = []
    for r in range(n):
        row = []
        for c in range(k):
            j = ranked[r, c]
            if j < 0:
                row.append(None)
                continue
            category = ctx.category[j] or "the shop"
            if not similar or not has_history[r]:
                row.append(f"popular in {category}")
                continue
            b = best[r, c]
            verb = types[kinds[r, b]]
            if own[r, c, b]:
                row.append(f"you {verb} it recently")
            elif best_sim[r, c] <= 0:
                row.append(f"more from {category}")
            else:
                item = hist[r, b]
                title = ctx.title[item] or ctx.vocab[item]
                row.append(f"similar to \"{title}\" you {verb}")
        out.append(row)
    return out


def recommendations(cfg: Config, ctx: ItemContext, steps: Steps, make, kind: str,
                    version: str, run_id: str):
    """One batch of users' published rows (a pyarrow Table): `make(ctx, steps, k)`'s top-N,
    filled with popular items, with reasons."""
    import pyarrow as pa

    n_top = cfg.scoring.top_n
    ranked, scores = lists.fill(*make(ctx, steps, n_top), *lists.popular(ctx, steps, n_top))
    why = reasons(ctx, steps, ranked, similar=kind != POPULARITY)
    r, c = np.nonzero(ranked >= 0)
    cols = {S.USER: steps.users[r].astype(str), S.RANK: (c + 1).astype(np.int32),
            S.ITEM: ctx.vocab[ranked[r, c]].astype(str), S.SCORE: scores[r, c],
            S.REASON: [why[i][j] for i, j in zip(r, c)],
            S.MODEL_VERSION: [version] * len(r), S.RUN_ID: [run_id] * len(r)}
    return pa.table(cols, schema=schema())


def serving_job(gate: GateRecord) -> tuple[tuple, tuple]:
    """(rankers, baselines) of `partitions.Job` for what the gate chose to serve."""
    if gate.serving.kind in SERVABLE_BASELINES:
        return (), (gate.serving.kind,)
    return (("ranker", gate.model_name, gate.serving.model_version),), ()
