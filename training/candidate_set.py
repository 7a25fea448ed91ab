"""A batch's candidates as the ranker reads them: one row per (user, item), the numeric
features `NUMERIC` names (built by `training.candidates.generate`) and the item's strings."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

SOURCES = ("sasrec", "covisit", "popularity", "repeat", "text")  # candidate sources
NUMERIC = (
    [f"{s}_{f}" for s in SOURCES[:4] for f in ("score", "log_rank")]
    + ["covisit_last_item", "user_item_events", "user_item_days_since", "user_item_bought",
       "user_item_max_weight", "item_log_users", "item_log_pop_1d", "item_log_pop_7d",
       "item_age_days", "item_log_price", "user_log_steps", "user_log_items",
       "user_days_since_last", "user_category_share", "user_brand_share",
       "last_item_same_category"]
    # what a value means when it cannot be computed: missing is not zero, the model is told
    + ["item_untouched", "item_price_missing", "item_rebuy_share", "item_log_rebuy_days",
       "user_item_cycle", "user_item_cycle_known", "user_item_own_cycle",
       "user_item_own_cycle_known", "user_item_log_purchases"]
    # item text: the text source's score and rank, the item's cosine to the user's recent
    # items (their mean vector) and to the last one (0 where the night has no text)
    + ["text_score", "text_log_rank", "text_sim_recent", "text_sim_last"])


@dataclass
class CandidateSet:
    """One row per (user, candidate item): `rows` index the users of the batch."""
    rows: np.ndarray              # [N] position in the batch
    items: np.ndarray             # [N] vocabulary index
    numeric: np.ndarray           # [N, len(NUMERIC)] float32
    category: np.ndarray          # [N] str (Python strings or fixed width)
    brand: np.ndarray             # [N] str
    title: np.ndarray             # [N] str

    def __len__(self) -> int:
        return len(self.rows)

    def inputs(self) -> dict[str, np.ndarray]:
        """The ranker's named inputs."""
        return {"numeric": self.numeric, **{
            name: np.asarray(getattr(self, name), dtype=str)[:, None]
            for name in ("category", "brand", "title")}}

    def with_features(self, names) -> "CandidateSet":
        """The same candidates with the numeric columns `names` (of `NUMERIC`), in order."""
        cols = [NUMERIC.index(n) for n in names]
        return dataclasses.replace(self, numeric=np.ascontiguousarray(self.numeric[:, cols]))

    def select(self, keep: np.ndarray) -> "CandidateSet":
        return CandidateSet(self.rows[keep], self.items[keep], self.numeric[keep],
                            self.category[keep], self.brand[keep], self.title[keep])


def concat(parts: list[CandidateSet]) -> CandidateSet:
    """One candidate set from several (their `rows` must not collide)."""
    return CandidateSet(*(np.concatenate(cols) for cols in zip(*(
        (p.rows, p.items, p.numeric, p.category, p.brand, p.title) for p in parts))))
