"""Score a holdout with a model or a baseline, under the same masks as the nightly lists."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Callable

import numpy as np

from training import metrics
from training.inputs import Catalog, Holdout, Sequences, exclusion_mask

log = logging.getLogger(__name__)

NEG = np.float32(-1e9)


def model_scorer(model, max_len: int, batch_size: int) -> Callable[[list[list[str]]], np.ndarray]:
    """histories (item-id strings) -> [n, vocab] logits from an exported scoring model."""
    def score(histories: list[list[str]]) -> np.ndarray:
        out = []
        for start in range(0, len(histories), batch_size):
            chunk = histories[start:start + batch_size]
            x = np.full((len(chunk), max_len), "", dtype=object)
            for r, h in enumerate(chunk):
                h = h[-max_len:]
                if h:
                    x[r, max_len - len(h):] = h
            out.append(np.asarray(model.predict_on_batch(x.astype(str)), dtype=np.float32))
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
    return score


def aligned_scorer(model, vocab: list[str], max_len: int,
                   batch_size: int) -> Callable[[list[list[str]]], np.ndarray]:
    """Like `model_scorer`, with the logits laid out over `vocab`: a registered model trained
    on an older vocabulary scores tonight's items; items it never saw get the row's minimum."""
    from training.model import item_vocabulary

    score = model_scorer(model, max_len, batch_size)
    own = [str(v) for v in item_vocabulary(model)]
    if own == list(vocab):
        return score
    pos = {v: i for i, v in enumerate(own)}
    cols = np.array([pos.get(v, -1) for v in vocab])
    unseen = cols < 0

    def score_aligned(histories: list[list[str]]) -> np.ndarray:
        s = score(histories)
        out = s[:, np.maximum(cols, 0)]
        if unseen.any():
            out[:, unseen] = s.min(axis=1, keepdims=True)
        return out
    return score_aligned


def popularity(before: Sequences, index: dict[str, int], vocab_size: int, until: datetime,
               days: int, weights: dict[str, float]) -> np.ndarray:
    """Item scores: event-type-weighted interactions in the `days` before `until`."""
    since = np.datetime64((until - timedelta(days=days)).replace(tzinfo=None), "us")
    scores = np.zeros(vocab_size, dtype=np.float32)
    for items, types, times in zip(before.items, before.types, before.times):
        for i, t, tm in zip(items, types, times):
            if tm >= since and i in index:
                scores[index[i]] += weights.get(t, 1.0)
    return scores


def masked(scores: np.ndarray, rows_bought: list[set[str]], index: dict[str, int],
           base_mask: np.ndarray, repurchasable: set[str]) -> np.ndarray:
    """Scores with never-recommend entries and each user's recent purchases pushed to -inf."""
    scores = np.where(base_mask[None, :], NEG, scores).astype(np.float32)
    for r, bought in enumerate(rows_bought):
        cols = [index[i] for i in bought if i in index and i not in repurchasable]
        scores[r, cols] = NEG
    return scores


NEW_USER_MAX_STEPS = 2      # users with at most this many steps before the split are "new"
COLD_ITEM_MAX_USERS = 5     # items fewer users touched before the split are "cold"


def item_user_counts(before: Sequences, index: dict[str, int]) -> np.ndarray:
    """How many users touched each vocabulary item before the split."""
    counts = np.zeros(len(index), dtype=np.int64)
    for items in before.items:
        for i in {index[i] for i in items if i in index}:
            counts[i] += 1
    return counts


def evaluate(scores: np.ndarray, hold: Holdout, vocab: list[str], catalog: Catalog,
             ks: list[int], item_users: np.ndarray | None = None,
             n_users: int | None = None) -> tuple[dict, np.ndarray]:
    """Metrics of a [n_holdout_users, vocab] score matrix; also returns the top lists.

    With `item_users` (users per item before the split) and `n_users`, adds novelty,
    intra-list diversity by category, and the metrics per slice: new vs returning users,
    cold vs warm target items (`slice.<name>.<metric>`).
    """
    index = {item: i for i, item in enumerate(vocab)}
    scores = masked(scores, hold.bought_before, index, exclusion_mask(vocab, catalog),
                    catalog.repurchasable)
    ranked = metrics.top_k(scores, max(ks))
    relevant = [{index[i] for i in t if i in index} for t in hold.targets]
    keep = [r for r, rel in enumerate(relevant) if rel]
    if len(keep) < len(relevant):
        log.info("holdout: %d users only touched items unknown to the model; left out",
                 len(relevant) - len(keep))
    report = metrics.ranking_report(ranked[keep], [relevant[r] for r in keep], ks)
    k = max(ks)
    report["coverage"] = float(len(np.unique(ranked[keep, :k])) /
                               max(1, (~exclusion_mask(vocab, catalog)).sum()))
    groups = np.array([catalog.category.get(v, "?") for v in vocab])
    report[f"diversity@{k}"] = metrics.intra_list_diversity(ranked[keep], groups, k)
    if item_users is not None and n_users:
        report[f"novelty@{k}"] = metrics.novelty(ranked[keep], item_users / n_users, k)
        new = {r for r in keep if len(hold.history[r]) <= NEW_USER_MAX_STEPS}
        user_slices = {"new_users": sorted(new), "returning_users": sorted(set(keep) - new)}
        for name, rows in user_slices.items():
            if rows:
                rep = metrics.ranking_report(ranked[rows], [relevant[r] for r in rows], ks)
                report.update({f"slice.{name}.{m}": v for m, v in rep.items()})
        cold = item_users < COLD_ITEM_MAX_USERS
        for name, want in (("cold_items", True), ("warm_items", False)):
            rel = {r: {i for i in relevant[r] if cold[i] == want} for r in keep}
            rows = [r for r in keep if rel[r]]
            if rows:
                rep = metrics.ranking_report(ranked[rows], [rel[r] for r in rows], ks)
                report.update({f"slice.{name}.{m}": v for m, v in rep.items()})
    return report, ranked
