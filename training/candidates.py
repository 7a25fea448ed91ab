"""Candidates and the ranker's features for a batch of users, as of a point in time.

Four sources propose items for a user, each from what was known at `ctx.at` only:

- `sasrec`: the sequence model's next-item logits for the user's history;
- `covisit`: item-to-item co-visitation from the user's recent items;
- `popularity`: event-type-weighted interactions in the popularity window before `at`;
- `repeat`: the user's own items again (re-views, repurchases), by recency-decayed weight;
- `text`: the items nearest by title text (a pretrained encoder's vectors) to the user's
  recent items: the one source that reaches items nobody has touched yet.

The union of each source's top items (sizes from `ranker.candidates`, after the same masks
as the published lists) is one user's candidate set. Every candidate gets one row of numeric
features (each source's score and rank, the user's past with the item, the item's
popularity, age and price, the user's activity and taste for the item's category and brand)
and the item's category, brand and title, which the ranker embeds itself.

Everything is computed on (user, item) pairs that exist, never on a users x catalog array:
the one [batch, catalog] array is SASRec's logits for the batch, cut in one compiled pass per
user to the keys of its best allowed items (`training.topk.top_keys`, at least `RANK_DEPTH`),
from which come SASRec's candidates and each candidate's exact rank. Ranks deeper than that
(or, for the sparse sources, past a user's last scored item) are capped there. The same code
builds the ranker's training rows (as of a label window's start), the holdout evaluation (as
of the split) and the night's lists (as of the cutoff), so training, evaluation and serving
cannot disagree on a feature.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import sparse

from training.candidate_set import NUMERIC, CandidateSet
from training.context import ItemContext
from training.rowwise import (
    graph_source,
    pick,
    row_ptr,
    source_features,
    text_dots,
    unique_pairs,
)
from training.steps import (
    OOV,
    PURCHASE_CODE,
    Steps,
    contains,
    days_between,
    grouped_rank,
    lookup,
    type_weights,
)
from training.topk import first_columns, key_ranks, top_keys

REPEAT_HALF_LIFE_DAYS = 3.0
MAX_DAYS = 60.0
RANK_DEPTH = 1024       # SASRec ranks are exact down to here, capped below
COVISIT_RECENT = 20     # a user's most recent items that co-visitation starts from
NEG = np.float32(-1e9)

CYCLE_CAP = 10.0        # days since the user's last purchase of an item / its rebuy interval

SasrecScorer = Callable[[Steps], np.ndarray]  # a batch -> [n, V] logits over ctx.vocab


def masked_keys(ctx: ItemContext, steps: Steps) -> np.ndarray:
    """Sorted row * V + item of each user's recent purchases that may not come back."""
    rows = steps.bought_rows()
    keep = ~ctx.repurchasable[steps.bought]
    return np.unique(rows[keep] * ctx.size + steps.bought[keep])


def per_row(masked: np.ndarray, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """`masked_keys` as (ptr [n + 1], items): row r's masked items are items[ptr[r]:ptr[r + 1]],
    sorted (the form `training.topk.masked_top` takes)."""
    return np.searchsorted(masked // size, np.arange(n + 1)), masked % size


def allowed(ctx: ItemContext, masked: np.ndarray, rows: np.ndarray,
            items: np.ndarray) -> np.ndarray:
    """May item `items[k]` be recommended to user `rows[k]`?"""
    return ~ctx.never[items] & ~contains(masked, rows * ctx.size + items)


def recent_items(steps: Steps, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, items) of each user's last `n` known items (unknown ones skipped)."""
    rows, items = steps.step_rows(), steps.items.astype(np.int64)
    valid = items > OOV
    rows, items = rows[valid], items[valid]
    counts = np.bincount(rows, minlength=len(steps))
    ends = np.cumsum(counts)
    keep = (ends[rows] - np.arange(len(rows))) <= n
    return rows[keep], items[keep]


class _Pairs:
    """Per-(user, item) values of one source or aggregate, looked up by key."""

    def __init__(self, size: int, rows: np.ndarray, items: np.ndarray, values: np.ndarray):
        keys = rows.astype(np.int64) * size + items
        order = np.argsort(keys, kind="stable")
        self.size, self.keys, self.values = size, keys[order], values[order]

    def get(self, rows: np.ndarray, items: np.ndarray, default) -> np.ndarray:
        return lookup(self.keys, self.values, rows.astype(np.int64) * self.size + items,
                      default)


def generate(ctx: ItemContext, steps: Steps, sasrec: SasrecScorer | None,
             sizes: dict[str, int]) -> CandidateSet:
    """Candidates and features for the users of `steps` (their steps before `ctx.at`)."""
    n, size = len(steps), ctx.size
    masked = masked_keys(ctx, steps)
    rows = steps.step_rows()
    items = steps.items.astype(np.int64)
    w = type_weights(ctx.weights)[steps.types]
    age = np.minimum(days_between(ctx.t_at, steps.times), MAX_DAYS).astype(np.float32)

    # the user's own past with each item
    valid = items > OOV
    ui_keys, inv = np.unique(rows[valid] * size + items[valid], return_inverse=True)
    ui_rows, ui_items = ui_keys // size, ui_keys % size
    count = np.bincount(inv, minlength=len(ui_keys)).astype(np.float32)
    recency = np.power(0.5, age[valid] / REPEAT_HALF_LIFE_DAYS)
    decayed = np.bincount(inv, weights=w[valid] * recency,
                          minlength=len(ui_keys)).astype(np.float32)
    since = np.full(len(ui_keys), MAX_DAYS, np.float32)
    np.minimum.at(since, inv, age[valid])
    max_w = np.zeros(len(ui_keys), np.float32)
    np.maximum.at(max_w, inv, w[valid])
    bought = np.zeros(len(ui_keys), np.float32)
    is_buy = steps.types[valid] == PURCHASE_CODE
    np.maximum.at(bought, inv, is_buy.astype(np.float32))
    since_buy = np.full(len(ui_keys), np.inf, np.float32)
    np.minimum.at(since_buy, inv[is_buy], age[valid][is_buy])
    first_buy = np.zeros(len(ui_keys), np.float32)
    np.maximum.at(first_buy, inv[is_buy], age[valid][is_buy])
    n_buys = np.bincount(inv[is_buy], minlength=len(ui_keys))
    own_gap = np.where(n_buys >= 2, (first_buy - since_buy) / np.maximum(n_buys - 1, 1), 0.0)

    # per user
    lengths = steps.lengths
    has = lengths > 0
    last_pos = np.maximum(steps.ptr[1:] - 1, 0)
    last_item = np.where(has, items[last_pos] if len(items) else OOV, OOV)
    user_items = np.bincount(np.unique(rows * size + items) // size, minlength=n)
    user_idle = np.where(has, age[last_pos] if len(age) else MAX_DAYS, MAX_DAYS)
    shares = {}
    for name, codes in (("category", ctx.category_codes), ("brand", ctx.brand_codes)):
        n_codes = int(codes.max()) + 1
        per = np.bincount(rows * n_codes + codes[items], weights=w, minlength=n * n_codes)
        total = np.bincount(rows, weights=w, minlength=n)
        keys = np.nonzero(per)[0]
        shares[name] = (n_codes, keys, (per[keys] / np.maximum(total[keys // n_codes], 1e-9))
                        .astype(np.float32))

    chosen_rows, chosen_items = [], []

    def choose(source: str, r: np.ndarray, i: np.ndarray, s: np.ndarray,
               ranks: np.ndarray | None = None) -> np.ndarray:
        """Ranks of the allowed entries (r, i, s) (given, or ranked here); the source's top
        entries become candidates."""
        ranks = grouped_rank(r, s, i) if ranks is None else ranks
        pick = ranks < sizes.get(source, 0)
        chosen_rows.append(r[pick])
        chosen_items.append(i[pick])
        return ranks

    mask_ptr, mask_items = per_row(masked, n, size)
    never = np.ascontiguousarray(ctx.never, np.bool_)

    def take(source: str, top: np.ndarray) -> None:
        """A source's best items per row ([n, depth], best first, -1 padding) as candidates."""
        best = top[:, :sizes.get(source, 0)]
        ok = best >= 0
        chosen_rows.append(np.repeat(np.arange(n), best.shape[1])[ok.ravel()])
        chosen_items.append(best[ok])

    # sasrec: the batch's logits, cut to each user's best allowed items (at least
    # RANK_DEPTH, unsorted) in one compiled pass per row; scores relative to the row's
    # maximum; its candidates are the best of those
    if sasrec is not None and n:
        logits = np.asarray(sasrec(steps), np.float32)
        sasrec_keys, sasrec_counts, row_max = top_keys(
            logits, min(RANK_DEPTH, size), never, (mask_ptr, mask_items), relative=True)
        take("sasrec", first_columns(sasrec_keys, sasrec_counts, sizes.get("sasrec", 0)))
    else:
        logits, row_max, sasrec_keys = None, None, None

    rr, ri = recent_items(steps, COVISIT_RECENT)

    recent = np.unique(rr * size + ri)  # each user's distinct recent items, ascending
    u_ptr, u_items = row_ptr(recent // size, n), recent % size
    touched = np.empty(size, np.int64)

    def from_recent(source: str, graph: sparse.csr_matrix):
        """A source over an item graph, from the user's recent items: its entries (a CSR
        [n, vocab] of scores: the graph's rows at the user's recent items, summed as
        `training.baselines.recent_scores` sums them), their keys, and how many allowed
        items it ranked per user; made and ranked in one compiled pass (`graph_source`)."""
        reach = int(np.diff(graph.indptr)[u_items].sum())
        ptr = np.empty(n + 1, np.int64)
        idx, val = np.empty(reach, graph.indices.dtype), np.empty(reach, np.float32)
        keys = np.empty(reach, np.uint64)
        want = sizes.get(source, 0)
        top, depth = np.empty((n, want), np.int64), np.empty(n, np.int64)
        graph_source(graph.indptr, graph.indices, graph.data, u_ptr, u_items, never, mask_ptr,
                     mask_items, want, top, depth, np.full(size, -1, np.int64),
                     np.empty(size, graph.data.dtype),
                     touched, ptr, idx, val, keys)
        take(source, top)
        m = ptr[n]
        return (ptr, idx[:m], val[:m], keys[:m]), depth

    # co-visitation, and text: the items nearest by title, from the user's recent items
    covisit, covisit_depth = from_recent("covisit", ctx.sim)
    text, text_depth = from_recent(
        "text", ctx.text_sim if ctx.text_sim is not None
        else sparse.csr_matrix((size, size), dtype=np.float32))

    # popularity: the global order, less each user's masked items
    head = ctx.pop_order[:sizes.get("popularity", 0) + np.diff(steps.bought_ptr).max(
        initial=0)]
    head = head[ctx.pop_7d[head] > 0]
    pr, pi = np.repeat(np.arange(n), len(head)), np.tile(head, n)
    ok = allowed(ctx, masked, pr, pi)
    position = (np.cumsum(ok.reshape(n, len(head)), axis=1) - 1).ravel()  # head is in order
    choose("popularity", pr[ok], pi[ok], -ctx.pop_rank[pi[ok]].astype(np.float64),
           position[ok])

    # repeat: the user's own items by recency-decayed weight
    ok = allowed(ctx, masked, ui_rows, ui_items) & (decayed > 0)
    repeat_rank = _Pairs(size, ui_rows[ok], ui_items[ok],
                         choose("repeat", ui_rows[ok], ui_items[ok], decayed[ok]))
    repeat_depth = np.bincount(ui_rows[ok], minlength=n)

    cr, ci = unique_pairs(np.concatenate(chosen_rows), np.concatenate(chosen_items), n, size)
    cand_ptr = row_ptr(cr, n)
    scratch = np.full(size, -1, np.int64)

    def source_values(entries) -> tuple[np.ndarray, np.ndarray]:
        """(score, rank among the allowed entries or -1) of every candidate in a source."""
        score, rank = np.empty(len(ci), np.float32), np.empty(len(ci), np.int64)
        source_features(*entries, cand_ptr, ci, scratch, score, rank)
        return score, rank

    covisit_score, covisit_rank = source_values(covisit)
    text_score, text_rank = source_values(text)
    sasrec_rank = np.zeros(len(ci), np.int64)
    sasrec_score = np.zeros(len(ci), np.float32)
    if sasrec_keys is not None:  # exact, as every candidate is an allowed item
        key_ranks(sasrec_keys, sasrec_counts, logits, row_max, True, cand_ptr, ci, RANK_DEPTH,
                  sasrec_rank, sasrec_score)
    own = _Pairs(size, ui_rows, ui_items, np.arange(len(ui_keys)))
    at = own.get(cr, ci, -1)
    mine = at >= 0

    def own_value(values, default):
        return np.where(mine, values[np.maximum(at, 0)] if len(values) else default, default)

    def share(name):
        n_codes, k, v = shares[name]
        code = (ctx.category_codes if name == "category" else ctx.brand_codes)[ci]
        return lookup(k, v, cr * n_codes + code, 0.0)

    features = {
        "sasrec_score": sasrec_score,
        "sasrec_log_rank": np.log1p(sasrec_rank),
        "covisit_score": covisit_score,
        "covisit_log_rank": covisit_rank,
        "popularity_score": np.log1p(ctx.pop_7d[ci]),
        "popularity_log_rank": np.log1p(ctx.pop_rank[ci]),
        "repeat_score": own_value(decayed, 0.0),
        "repeat_log_rank": repeat_rank.get(cr, ci, -1),
        "covisit_last_item": pick(ctx.sim, last_item, cand_ptr, ci),
        "user_item_events": np.log1p(own_value(count, 0.0)),
        "user_item_days_since": own_value(since, MAX_DAYS),
        "user_item_bought": own_value(bought, 0.0),
        "user_item_max_weight": own_value(max_w, 0.0),
        "item_log_users": np.log1p(ctx.item_users[ci].astype(np.float32)),
        "item_log_pop_1d": np.log1p(ctx.pop_1d[ci]),
        "item_log_pop_7d": np.log1p(ctx.pop_7d[ci]),
        "item_age_days": np.minimum(ctx.first_seen_days[ci], MAX_DAYS),
        "item_log_price": ctx.log_price[ci],
        "user_log_steps": np.log1p(lengths[cr].astype(np.float32)),
        "user_log_items": np.log1p(user_items[cr].astype(np.float32)),
        "user_days_since_last": user_idle[cr],
        "user_category_share": share("category"),
        "user_brand_share": share("brand"),
        "last_item_same_category": (ctx.category_codes[ci]
                                    == ctx.category_codes[last_item[cr]]),
        "item_untouched": ctx.item_users[ci] == 0,
        "item_price_missing": ~ctx.price_known[ci],
        "item_rebuy_share": ctx.rebuy_share[ci],
        "item_log_rebuy_days": np.log1p(ctx.rebuy_days[ci]),
    }
    # how far the user is through an interval since they last bought the item: the item's
    # usual rebuy interval (known for an item they bought that others rebuy) and their own
    # interval between purchases of it (known where they rebought it)
    cycle_days = own_value(since_buy, np.inf)
    for name, interval in (("cycle", ctx.rebuy_days[ci]), ("own_cycle", own_value(own_gap, 0.0))):
        known = np.isfinite(cycle_days) & (interval > 0)
        features[f"user_item_{name}_known"] = known
        features[f"user_item_{name}"] = np.where(
            known, np.minimum(cycle_days / np.maximum(interval, 1e-3), CYCLE_CAP), 0.0)
    features["user_item_log_purchases"] = np.log1p(own_value(n_buys, 0))
    features["text_score"] = text_score
    features["text_log_rank"] = text_rank
    features["text_sim_recent"], features["text_sim_last"] = text_similarities(
        ctx, rr, ri, last_item, cr, ci, n)
    # a sparse source's rank for an item it did not score: just past its last scored item
    for name, depth in (("covisit", covisit_depth), ("repeat", repeat_depth),
                        ("text", text_depth)):
        col = features[f"{name}_log_rank"]
        features[f"{name}_log_rank"] = np.log1p(np.where(col < 0, depth[cr], col))
    numeric = np.empty((len(cr), len(NUMERIC)), np.float32)
    for j, name in enumerate(NUMERIC):  # cast as it is written: no float32 copy per column
        numeric[:, j] = features[name]
    # the item's strings as the context holds them (Python strings): a fixed-width copy of
    # every candidate's title cost more than any feature; the ranker's inputs convert them
    return CandidateSet(rows=cr, items=ci, numeric=numeric, category=ctx.category[ci],
                        brand=ctx.brand[ci], title=ctx.title[ci])


def text_similarities(ctx: ItemContext, rr: np.ndarray, ri: np.ndarray, last_item: np.ndarray,
                      cr: np.ndarray, ci: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per candidate (cr, ci): the cosine of its text vector to the mean of the user's
    recent items' (rr, ri) and to the user's last item's; zeros without text.

    User by user over each user's run of candidates (`cr` sorted, as `generate` makes it;
    sorted here otherwise), two dot products per candidate in a compiled loop, so no
    candidate-sized copy of vectors is made and memory stays [n, dim] whatever the batch."""
    recent, last = np.zeros(len(cr), np.float32), np.zeros(len(cr), np.float32)
    vec = ctx.text_vec
    if vec is None or not len(cr):
        return recent, last
    order = None
    if np.any(cr[1:] < cr[:-1]):
        order = np.argsort(cr, kind="stable")
        cr, ci = cr[order], ci[order]
    profile = np.asarray(sparse.csr_matrix((np.ones(len(rr), np.float32), (rr, ri)),
                                           shape=(n, ctx.size)) @ vec, np.float32)
    profile /= np.maximum(np.linalg.norm(profile, axis=1, keepdims=True), 1e-9)
    both = np.empty((2, len(cr)), np.float32)
    text_dots(np.ascontiguousarray(vec, np.float32), ci, row_ptr(cr, n), profile,
              np.ascontiguousarray(vec[last_item]), both[0], both[1])
    if order is not None:
        recent[order], last[order] = both
    else:
        recent, last = both
    return recent, last


def labels(cands: CandidateSet, after: Steps, size: int,
           weights: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """(label, sample weight) per candidate: 1 if the user touched the item in the label
    window (`after`, rows aligned with the candidates' batch), weighted by the strongest
    event type there (a purchase counts 5 views); 0 with weight 1 otherwise."""
    w = type_weights(weights)[after.types]
    keys, inv = np.unique(after.step_rows() * size + after.items, return_inverse=True)
    best = np.zeros(len(keys), np.float32)
    np.maximum.at(best, inv, w)
    got = lookup(keys, best, cands.rows * size + cands.items, 0.0).astype(np.float32)
    return (got > 0).astype(np.float32), np.where(got > 0, got, 1.0).astype(np.float32)
