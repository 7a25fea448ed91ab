"""Ranking metrics for top-K lists against sets of relevant items (binary relevance).

Every function takes `ranked`, an [n_users, K] array of item indices best first, and
`relevant`, one set of item indices per user, and returns the mean over users.
"""

from __future__ import annotations

import numpy as np


def hits_matrix(ranked: np.ndarray, relevant: list[set[int]]) -> np.ndarray:
    """[n_users, K] booleans: is the item at rank k+1 relevant for that user."""
    return np.array([[i in rel for i in row] for row, rel in zip(ranked, relevant)], dtype=bool)


def hit_rate(hits: np.ndarray, k: int) -> float:
    """Share of users with at least one relevant item in their top k."""
    return float(hits[:, :k].any(axis=1).mean())


def recall(hits: np.ndarray, relevant: list[set[int]], k: int) -> float:
    """Relevant items found in the top k over all relevant items (at most k), per user."""
    n_rel = np.array([len(r) for r in relevant], dtype=float)
    return float((hits[:, :k].sum(axis=1) / np.minimum(n_rel, k)).mean())


def ndcg(hits: np.ndarray, relevant: list[set[int]], k: int) -> float:
    """DCG of the top k over the DCG of a perfect list, with discounts 1/log2(rank + 1)."""
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits[:, :k] * disc).sum(axis=1)
    ideal = np.array([disc[: min(len(r), k)].sum() for r in relevant])
    return float((dcg / ideal).mean())


def average_precision(hits: np.ndarray, relevant: list[set[int]], k: int) -> float:
    """MAP@k: mean over users of the precision at each relevant rank, over min(|rel|, k)."""
    h = hits[:, :k].astype(float)
    prec = np.cumsum(h, axis=1) / np.arange(1, k + 1)
    n_rel = np.minimum(np.array([len(r) for r in relevant], dtype=float), k)
    return float(((prec * h).sum(axis=1) / n_rel).mean())


def mrr(hits: np.ndarray) -> float:
    """Mean reciprocal rank of the first relevant item (0 when none is in the list)."""
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, np.inf)
    return float((1.0 / first).mean())


def ranking_report(ranked: np.ndarray, relevant: list[set[int]], ks: list[int]) -> dict:
    """All metrics at every k, as `{"ndcg@10": ..., "hr@10": ..., "mrr": ...}`."""
    if len(relevant) == 0:
        raise ValueError("no users to evaluate: the holdout is empty")
    hits = hits_matrix(ranked, relevant)
    out = {}
    for k in ks:
        if k > ranked.shape[1]:
            raise ValueError(f"k={k} is longer than the ranked lists ({ranked.shape[1]})")
        out[f"hr@{k}"] = hit_rate(hits, k)
        out[f"recall@{k}"] = recall(hits, relevant, k)
        out[f"ndcg@{k}"] = ndcg(hits, relevant, k)
        out[f"map@{k}"] = average_precision(hits, relevant, k)
    out["mrr"] = mrr(hits)
    out["users"] = len(relevant)
    return out


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores per row, best first (ties broken by lower index)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.lexsort((part, -np.take_along_axis(scores, part, axis=1)), axis=1)
    return np.take_along_axis(part, order, axis=1)


def novelty(ranked: np.ndarray, item_share: np.ndarray, k: int) -> float:
    """Mean self-information -log2(share of users who had the item) of the top-k items."""
    share = np.clip(item_share[ranked[:, :k]], 1e-6, 1.0)
    return float((-np.log2(share)).mean())


def intra_list_diversity(ranked: np.ndarray, item_group: np.ndarray, k: int) -> float:
    """Share of pairs of items in a top-k list that belong to different groups (categories)."""
    groups = item_group[ranked[:, :k]]
    same = (groups[:, :, None] == groups[:, None, :]).sum(axis=(1, 2)) - groups.shape[1]
    pairs = groups.shape[1] * (groups.shape[1] - 1)
    return float((1.0 - same / max(pairs, 1)).mean())
