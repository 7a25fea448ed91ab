"""Every model of the night on the same holdout, one batch of users at a time.

The ranker, SASRec alone and the baselines (popularity, item-kNN, ALS) each produce top-K
lists for the holdout users under the published masks, short lists filled with popular
items; `training.evaluate.Evaluation` turns them into metrics. Memory is a batch of users,
plus catalog-sized state; ALS runs in Spark MLlib and returns each holdout user's top-K.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Callable

import numpy as np

from nightshelf.config import Config
from training import context, lists
from training.baselines import ItemKNN, als_top
from training.candidates import allowed, masked_keys
from training.evaluate import Evaluation
from training.inputs import Night
from training.steps import OOV, Steps, type_weights

log = logging.getLogger(__name__)

ListMaker = Callable[[context.ItemContext, Steps, int], tuple[np.ndarray, np.ndarray]]


def item_context(cfg: Config, steps: Steps, at: datetime, vocab: np.ndarray,
                 catalog: context.Catalog) -> context.ItemContext:
    """The item context as of `at` from `steps` (only steps before `at`), co-visitation
    fitted on them."""
    valid = steps.items > OOV
    knn = ItemKNN(len(vocab)).fit_pairs(steps.step_rows()[valid],
                                        steps.items[valid].astype(np.int64), len(steps))
    return context.build(steps, at, vocab, catalog, cfg.events.weights,
                         cfg.features.popularity_days, knn.sim)


def ks(cfg: Config) -> list[int]:
    return sorted(set(cfg.model.metrics_k) | {cfg.scoring.top_n})


def baseline_makers() -> dict[str, ListMaker]:
    return {"popularity": lists.popular, "item_knn": lists.covisited}


def evaluate(cfg: Config, night: Night, ctx: context.ItemContext,
             models: dict[str, ListMaker], batch_size: int, als: bool = False
             ) -> dict[str, dict]:
    """Reports of each model (name -> list maker) on the night's holdout, plus ALS."""
    k = max(ks(cfg))
    ev = Evaluation(ctx, ks(cfg))
    rows = night.holdout_rows
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        before, after = night.before.take(chunk), night.after.take(chunk)
        fallback = lists.popular(ctx, before, k)
        for name, make in models.items():
            ranked, scores = lists.fill(*make(ctx, before, k), *fallback)
            ev.add(name, ranked, before, after)
        log.info("holdout: %d/%d users scored by %s", min(start + batch_size, len(rows)),
                 len(rows), ", ".join(models))
    if als:
        for start, ranked in als_lists(cfg, night, ctx, k, batch_size):
            chunk = rows[start:start + batch_size]
            before, after = night.before.take(chunk), night.after.take(chunk)
            ev.add("als", lists.fill(ranked, np.zeros(ranked.shape, np.float32),
                                     *lists.popular(ctx, before, k))[0], before, after)
    return ev.reports()


def als_lists(cfg: Config, night: Night, ctx: context.ItemContext, k: int, batch_size: int):
    """(start, [batch, k] lists) of implicit ALS (Spark MLlib) for the holdout users, from
    `recommendForUserSubset`, masked like the published lists."""
    from nightshelf.spark import get_spark

    spark = get_spark(cfg, "als")
    try:
        before = night.before
        rows = before.step_rows()
        valid = before.items > OOV
        w = type_weights(cfg.events.weights)
        top = als_top(spark, rows[valid], before.items[valid].astype(np.int64),
                      w[before.types[valid]], night.holdout_rows, k, seed=cfg.model.seed,
                      extra=int(np.diff(before.bought_ptr).max(initial=0)))
    finally:
        spark.stop()
    hold = night.holdout_rows
    for start in range(0, len(hold), batch_size):
        chunk = hold[start:start + batch_size]
        steps = before.take(chunk)
        r, i, s = [], [], []
        for pos, user_row in enumerate(chunk):
            items, scores = top.get(int(user_row), (np.zeros(0, np.int64), np.zeros(0)))
            r.append(np.full(len(items), pos))
            i.append(items)
            s.append(scores)
        r, i, s = np.concatenate(r), np.concatenate(i).astype(np.int64), np.concatenate(s)
        ok = allowed(ctx, masked_keys(ctx, steps), r, i)
        yield start, lists.from_pairs(len(chunk), r[ok], i[ok], s[ok].astype(np.float32),
                                      k)[0]
