"""Holdout metrics from each model's top-K lists, streamed one batch of users at a time.

`Evaluation.add(name, ranked, before, after)` takes a batch of holdout users' [n, K] lists
(vocabulary indices, -1 padding), their steps before the split (for the new/returning
slice) and after it (what they touched: the relevant items). It keeps sums, so memory is
catalog-sized whatever the number of users; `reports()` turns them into means:
HR/Recall/NDCG/MAP@K, MRR, catalog coverage, novelty and intra-list diversity, and the
metrics per slice (new vs returning users, cold vs warm target items).

Users who only touched items the vocabulary does not know are left out, as before.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from training import metrics
from training.context import ItemContext
from training.steps import OOV, Steps, contains

NEW_USER_MAX_STEPS = 2      # users with at most this many steps before the split are "new"
COLD_ITEM_MAX_USERS = 5     # items fewer users touched before the split are "cold"


def relevant(after: Steps, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted row * V + item keys of the distinct known items each user touched, count per
    row)."""
    items = after.items.astype(np.int64)
    ok = items > OOV
    keys = np.unique(after.step_rows()[ok] * size + items[ok])
    return keys, np.bincount(keys // size, minlength=len(after))


class Evaluation:
    """Streams batches of top-K lists into metric sums, per model and slice."""

    def __init__(self, ctx: ItemContext, ks: list[int]):
        self.ctx, self.ks, self.k = ctx, sorted(ks), max(ks)
        self.cold = ctx.item_users < COLD_ITEM_MAX_USERS
        self.share = ctx.item_users / max(ctx.n_users, 1)
        self.recommendable = max(1, int((~ctx.never).sum()))
        self.sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.seen: dict[str, np.ndarray] = {}

    def add(self, name: str, ranked: np.ndarray, before: Steps, after: Steps) -> None:
        size = self.ctx.size
        keys, n_rel = relevant(after, size)
        keep = n_rel > 0
        rows = np.nonzero(keep)[0]
        ranked = ranked[keep]
        if not len(rows):
            return
        ok = ranked >= 0
        hit = ok & contains(keys, rows[:, None] * size + np.maximum(ranked, 0))
        new = before.lengths[rows] <= NEW_USER_MAX_STEPS
        self._add(name, "", metrics.per_user(hit, n_rel[rows], self.ks))
        for slice_name, sel in (("new_users", new), ("returning_users", ~new)):
            if sel.any():
                self._add(name, f"slice.{slice_name}.",
                          metrics.per_user(hit[sel], n_rel[rows][sel], self.ks))
        for slice_name, want in (("cold_items", True), ("warm_items", False)):
            part = keys[self.cold[keys % size] == want]
            n_part = np.bincount(part // size, minlength=len(after))[rows]
            sel = n_part > 0
            self.sums[name][f"relevant.{slice_name}"] += float(n_part.sum())
            if sel.any():
                h = hit & (self.cold[np.maximum(ranked, 0)] == want)
                self._add(name, f"slice.{slice_name}.",
                          metrics.per_user(h[sel], n_part[sel], self.ks))
        top = ranked[:, :self.k]
        seen = self.seen.setdefault(name, np.zeros(size, dtype=bool))
        seen[top[top >= 0]] = True
        total, count = metrics.novelty_sum(ranked, self.share, self.k)
        s, c = self.sums[name], self.counts[name]
        s["novelty"] += total
        c["novelty"] += count
        s["diversity"] += float(metrics.diversity_per_user(
            ranked, self.ctx.category_codes, self.k).sum())

    def _add(self, name: str, prefix: str, per_user: dict[str, np.ndarray]) -> None:
        s, c = self.sums[name], self.counts[name]
        for metric, values in per_user.items():
            s[prefix + metric] += float(values.sum())
        c[prefix] += len(next(iter(per_user.values())))

    def rows(self) -> dict[str, list]:
        """The accumulated sums as columns (model, kind, key, value), kind being `sum`,
        `count` or `seen` (key: an item index in the lists): what a Spark partition hands
        back, to be `merge`d on the driver."""
        out = {"model": [], "kind": [], "key": [], "value": []}

        def add(model, kind, key, value):
            for col, v in zip(out, (model, kind, key, float(value))):
                out[col].append(v)
        for model, sums in self.sums.items():
            for key, value in sums.items():
                add(model, "sum", key, value)
            for key, value in self.counts[model].items():
                add(model, "count", key, value)
            for item in np.nonzero(self.seen.get(model, np.zeros(0, bool)))[0]:
                add(model, "seen", str(item), 1)
        return out

    def merge(self, rows: dict[str, list]) -> "Evaluation":
        """Add the sums of another evaluation over the same context (see `rows`)."""
        for model, kind, key, value in zip(rows["model"], rows["kind"], rows["key"],
                                           rows["value"]):
            if kind == "sum":
                self.sums[model][key] += value
            elif kind == "count":
                self.counts[model][key] += int(value)
            else:
                self.seen.setdefault(model, np.zeros(self.ctx.size, dtype=bool))[int(key)] = True
        return self

    def report(self, name: str) -> dict:
        s, c = self.sums[name], self.counts[name]
        if not c[""]:
            raise ValueError(f"no holdout user to evaluate {name} on: the holdout is empty")
        out = {}
        for key, total in s.items():
            if key in ("novelty", "diversity"):
                continue
            if key.startswith("relevant."):  # how many (user, item) the slice's users touched
                out[f"slice.{key[len('relevant.'):]}.relevant"] = int(total)
                continue
            prefix = key[:key.rindex(".") + 1] if key.startswith("slice.") else ""
            out[key] = total / c[prefix]
        for prefix, n in c.items():
            if prefix != "novelty":
                out[f"{prefix}users"] = n
        distinct = int(self.seen[name].sum())
        out["coverage"] = float(distinct / self.recommendable)
        # of what lists of K items for these users could cover at most: a collapse shows as a
        # small share whatever the catalog's size (the gate's floor, `gate.min_coverage`)
        out["distinct_items"] = distinct
        possible = max(1, min(self.recommendable, c[""] * self.k))
        out["possible_coverage"] = float(distinct / possible)
        out[f"diversity@{self.k}"] = s["diversity"] / c[""]
        out[f"novelty@{self.k}"] = s["novelty"] / max(c["novelty"], 1)
        return out

    def reports(self) -> dict[str, dict]:
        return {name: self.report(name) for name in self.sums}


def comparison_table(reports: dict[str, dict]) -> str:
    """Markdown: one row per metric (slices included), one column per model."""
    keys = list(dict.fromkeys(k for rep in reports.values() for k in rep))
    names = list(reports)
    lines = ["| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for k in keys:
        cells = [f"{reports[n][k]:.4f}" if k in reports[n] else "-" for n in names]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
