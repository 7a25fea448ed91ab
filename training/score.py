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
from training.rowwise import pick
from training.steps import OOV, Steps

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


def reasons(ctx: ItemContext, steps: Steps, ranked: np.ndarray, similar: bool):
    """Why each item of each list, for the entries `ranked >= 0` in row-major order (the
    published rows'), as a pyarrow string array: "you <verb> it recently" for an item of
    the user's own, else the user's recent item most co-visited with it, else its category
    (and with `similar` False, or no history, its category's popularity). Built column-wise
    by Arrow's string kernels, no Python loop per row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    hist, kinds = recent_history(steps, REASON_HISTORY)
    n, k = ranked.shape
    rec = np.maximum(ranked, 0)
    own = (ranked[:, :, None] == hist[:, None, :]) & (hist[:, None, :] >= 0)
    h = hist.shape[1]  # each listed item's graph row, read at the user's recent items
    sims = pick(ctx.sim, rec.ravel(), np.arange(n * k + 1) * h,
                np.repeat(hist, k, axis=0).ravel()).reshape(n, k, h)
    sims = np.where(hist[:, None, :] >= 0, sims, -np.inf)
    best = np.where(own.any(axis=2), own.argmax(axis=2), sims.argmax(axis=2))
    best_sim = np.take_along_axis(sims, best[:, :, None], axis=2)[:, :, 0]
    has_history = hist[:, 0] >= 0
    r, c = np.nonzero(ranked >= 0)
    b = best[r, c]
    names = _names(ctx)
    category = names["category"].take(pa.array(ranked[r, c]))
    verb = names["verbs"].take(pa.array(kinds[r, b].astype(np.int64)))
    title = names["title"].take(pa.array(np.maximum(hist[r, b], 0)))

    def text(*parts):
        return pc.binary_join_element_wise(*parts, "")

    popular = ~has_history[r] if similar else np.ones(len(r), bool)
    mine = own[r, c, b] & ~popular
    alike = ~popular & ~mine & (best_sim[r, c] > 0)
    out = pc.if_else(pa.array(alike), text('similar to "', title, '" you ', verb),
                     text("more from ", category))
    out = pc.if_else(pa.array(mine), text("you ", verb, " it recently"), out)
    return pc.if_else(pa.array(popular), text("popular in ", category), out)


_NAMES: dict = {}


def _names(ctx: ItemContext) -> dict:
    """Per item its id, category ("the shop" without one) and title (its id without one),
    and the verbs per event type, as Arrow arrays; made once per context."""
    import pyarrow as pa

    if _NAMES.get("ctx") is not ctx:
        _NAMES.clear()
        _NAMES.update({
            "ctx": ctx,
            "vocab": pa.array(ctx.vocab, pa.string()),
            "category": pa.array([c or "the shop" for c in ctx.category], pa.string()),
            "title": pa.array([t or v for t, v in zip(ctx.title, ctx.vocab)], pa.string()),
            "verbs": pa.array([VERBS.get(t, "viewed") for t in S.EVENT_TYPES], pa.string())})
    return _NAMES


def recommendations(cfg: Config, ctx: ItemContext, steps: Steps, make, kind: str,
                    version: str, run_id: str):
    """One batch of users' published rows (a pyarrow Table): `make(ctx, steps, k)`'s top-N,
    filled with popular items, with reasons."""
    import pyarrow as pa

    n_top = cfg.scoring.top_n
    ranked, scores = make(ctx, steps, n_top)
    if (ranked < 0).any():  # short lists: filled with popular items (made only then)
        ranked, scores = lists.fill(ranked, scores, *lists.popular(ctx, steps, n_top))
    why = reasons(ctx, steps, ranked, similar=kind != POPULARITY)
    r, c = np.nonzero(ranked >= 0)
    n = len(r)
    cols = {S.USER: pa.array(steps.users, pa.string()).take(r),
            S.RANK: (c + 1).astype(np.int32),
            S.ITEM: _names(ctx)["vocab"].take(ranked[r, c]), S.SCORE: scores[r, c],
            S.REASON: why,
            S.MODEL_VERSION: pa.repeat(pa.scalar(version, pa.string()), n),
            S.RUN_ID: pa.repeat(pa.scalar(run_id, pa.string()), n)}
    return pa.table(cols, schema=schema())


def serving_job(gate: GateRecord) -> tuple[tuple, tuple]:
    """(rankers, baselines) of `partitions.Job` for what the gate chose to serve."""
    if gate.serving.kind in SERVABLE_BASELINES:
        return (), (gate.serving.kind,)
    return (("ranker", gate.model_name, gate.serving.model_version),), ()
