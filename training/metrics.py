"""Ranking metrics for top-K lists against sets of relevant items (binary relevance).

Every function takes `ranked`, an [n_users, K] array of item indices best first, and
`relevant`, one set of item indices per user, and returns the mean over users.
"""

from __future__ import annotations

import numpy as np

from training.steps import top_columns


def hits_matrix(ranked: np.ndarray, relevant: list[set[int]]) -> np.ndarray:
    """[n_users, K] booleans: is the item at rank k+1 relevant for that user."""
    return np.array([[i in rel for i in row] for row, rel in zip(ranked, relevant)], dtype=bool)


def per_user(hits: np.ndarray, n_relevant: np.ndarray, ks: list[int]) -> dict[str, np.ndarray]:
    """Every metric at every k for each user, from the [n, K] hits and the number of relevant
    items per user (> 0): HR, recall (over min(|rel|, k)), NDCG (discounts 1/log2(rank + 1)),
    MAP and the reciprocal rank of the first hit (0 when none is in the list)."""
    n_rel = n_relevant.astype(float)
    out = {}
    for k in ks:
        if k > hits.shape[1]:
            raise ValueError(f"k={k} is longer than the ranked lists ({hits.shape[1]})")
        h = hits[:, :k].astype(float)
        disc = 1.0 / np.log2(np.arange(2, k + 2))
        ideal = np.cumsum(disc)[np.minimum(n_rel, k).astype(int) - 1]
        cut = np.minimum(n_rel, k)
        out[f"hr@{k}"] = h.any(axis=1).astype(float)
        out[f"recall@{k}"] = h.sum(axis=1) / cut
        out[f"ndcg@{k}"] = (h * disc).sum(axis=1) / ideal
        prec = np.cumsum(h, axis=1) / np.arange(1, k + 1)
        out[f"map@{k}"] = (prec * h).sum(axis=1) / cut
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, np.inf)
    out["mrr"] = 1.0 / first
    return out


def ranking_report(ranked: np.ndarray, relevant: list[set[int]], ks: list[int]) -> dict:
    """All metrics at every k, as `{"ndcg@10": ..., "hr@10": ..., "mrr": ...}`."""
    if len(relevant) == 0:
        raise ValueError("no users to evaluate: the holdout is empty")
    n_rel = np.array([len(r) for r in relevant])
    out = {m: float(v.mean()) for m, v in per_user(hits_matrix(ranked, relevant), n_rel,
                                                   ks).items()}
    out["users"] = len(relevant)
    return out


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores per row, best first (ties broken by lower index)."""
    return top_columns(scores, k)


def novelty_sum(ranked: np.ndarray, item_share: np.ndarray, k: int) -> tuple[float, int]:
    """(sum, count) of the self-information -log2(share of users who had the item) over the
    top-k entries (padding, -1, left out)."""
    top = ranked[:, :k]
    share = np.clip(item_share[np.maximum(top, 0)], 1e-6, 1.0)
    valid = top >= 0
    return float((-np.log2(share) * valid).sum()), int(valid.sum())


def novelty(ranked: np.ndarray, item_share: np.ndarray, k: int) -> float:
    """Mean self-information -log2(share of users who had the item) of the top-k items."""
    total, count = novelty_sum(ranked, item_share, k)
    return total / max(count, 1)


def diversity_per_user(ranked: np.ndarray, item_group: np.ndarray, k: int) -> np.ndarray:
    """Share of pairs of items in each top-k list that belong to different groups
    (categories); padding (-1) counts as no pair."""
    top = ranked[:, :k]
    groups = np.where(top >= 0, item_group[np.maximum(top, 0)], -1 - np.arange(top.shape[1]))
    valid = (top >= 0).sum(axis=1)
    same = (groups[:, :, None] == groups[:, None, :]).sum(axis=(1, 2)) - top.shape[1]
    pairs = valid * (valid - 1)
    return np.where(pairs > 0, 1.0 - same / np.maximum(pairs, 1), 0.0)


def intra_list_diversity(ranked: np.ndarray, item_group: np.ndarray, k: int) -> float:
    """Mean over users of `diversity_per_user`."""
    return float(diversity_per_user(ranked, item_group, k).mean())
