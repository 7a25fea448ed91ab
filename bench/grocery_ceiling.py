"""How far above buy-again any model can get on the grocery profile: the Bayes ceiling.

The grocery profile (`nightshelf/shop_profiles.py`) draws each basket from a known process:
a household buys each of its staples with `due_rate` once the item has run out, else with
`early_rate`, plus Poisson(`explore_mean`) items by taste and popularity. For each seed this
bench generates the shop exactly as `nightshelf generate` does with the settings of
`make bench-quality-night PROFILE=grocery` (1,500 households, 56 days; seed 13 is that
bench's shop), keeping each day's baskets as drawn and the households' state before each of
the last `--nights` days. On those days it ranks every item for every household that shops:

- `oracle`: by the probability the process gives the item of being in that day's basket,
  knowing what no model can: the household's staples, each staple's clock (the day the
  household last bought it as a staple), how long each item lasts and the household's
  taste. Its NDCG@10 against the baskets actually drawn is the ceiling of the metric on
  this profile (up to the gap between ranking by marginal probability and the exact NDCG
  optimum, small when the top 10 are near-certain);
- `staples_known`: the same, told the household's staples but with each staple's clock as
  the household's purchases show it (an explored draw of a staple item resets it too);
- `buy_again_when_due`: buy-again told how long each item lasts, an item that has not run
  out since the household's last purchase of it weighing 0.05 as much;
- `buy_again`: as `training.lists.buy_again` computes it (purchases weighted
  0.5^(age / 30 days)), to check that the simulation gives the pipeline's figure.

Relevant items are the distinct items of the household's basket that someone bought on an
earlier day (the night's vocabulary: a model cannot name an item nobody has touched), as in
`training.evaluate.relevant`; NDCG@10 is `training.metrics`'. Several seeds give the spread.
A seed takes about 2 seconds.

    .venv/bin/python bench/grocery_ceiling.py --seeds 13 14 15 16 17 \
        --out bench/results/grocery-ceiling.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODELS = ("oracle", "staples_known", "buy_again_when_due", "buy_again")


def top10(order: np.ndarray) -> np.ndarray:
    """The first 10 of `order`, padded with -1 (no item) to 10."""
    return np.concatenate([order[:10], np.full(max(0, 10 - len(order)), -1)])


def explore_probability(sampler, taste_cum: np.ndarray, n_items: int) -> np.ndarray:
    """[n_households, n_items]: the chance one explored draw is each item: the household's
    taste over leaves (leaves with no live item send their share to a uniform live leaf, as
    `_taste_leaf` does) times the item's popularity share within its leaf."""
    taste = np.diff(np.concatenate([np.zeros((len(taste_cum), 1)), taste_cum], axis=1), axis=1)
    has = sampler.has
    taste = taste[:, :len(has)]
    lost = taste[:, ~has].sum(axis=1, keepdims=True)
    taste = np.where(has, taste, 0.0) + lost * has / has.sum()
    within = np.zeros(n_items)
    leaf_of = np.full(n_items, -1)
    w = np.diff(np.concatenate([[0.0], sampler.cum]))
    for leaf in np.flatnonzero(has):
        s, e = sampler.start[leaf], sampler.end[leaf]
        within[sampler.items[s:e]] = w[s:e] / sampler.total[leaf]
        leaf_of[sampler.items[s:e]] = leaf
    live = leaf_of >= 0
    out = np.zeros((len(taste), n_items))
    out[:, live] = taste[:, leaf_of[live]] * within[live]
    return out


def run(seed: int, users: int, days: int, nights: int, home: Path) -> dict:
    """Generate the grocery shop exactly as `nightshelf generate` does (into `home`), keeping
    each day's baskets as drawn and, before each of the last `nights` days, the households'
    staples and their clocks; then score every ranker on those days."""
    sys.path.insert(0, str(REPO))
    from nightshelf import shop as S
    from nightshelf.config import load_config

    env = {"NIGHTSHELF_HOME": str(home), "NIGHTSHELF__SHOP__PROFILE": "grocery",
           "NIGHTSHELF__SHOP__SEED": str(seed), "NIGHTSHELF__SHOP__USERS": str(users),
           "NIGHTSHELF__SHOP__DAYS": str(days)}
    cfg = load_config(environ=env)
    drawn, states, made = [], {}, {}
    real = {name: getattr(S, name) for name in ("basket_day", "make_catalog", "make_users")}

    def spy(day, day_start, active, homes, prof, explore, rng):
        if day >= days - nights:  # the state before the day's baskets: what the oracle knows
            states[day] = (homes.staples.copy(), homes.last.copy(), homes)
        events = real["basket_day"](day, day_start, active, homes, prof, explore, rng)
        drawn.append((events["user"], events["item"]))
        return events

    def kept(name):  # the catalog and households `generate` makes, kept as they are made
        def make(*args):
            made[name] = real[name](*args)
            return made[name]
        return make

    patches = {"basket_day": spy, "make_catalog": kept("make_catalog"),
               "make_users": kept("make_users")}
    for name, fn in patches.items():
        setattr(S, name, fn)
    try:
        S.generate(cfg)
    finally:
        for name, fn in real.items():
            setattr(S, name, fn)
    cat, hh = made["make_catalog"], made["make_users"]
    n_items = len(cat.item_id)
    prof = S.profile("grocery")
    seen = np.zeros(n_items, dtype=bool)
    bought: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (user, item, day)
    result = {"seed": seed, "households": users, "items": n_items, "days": days, "nights": []}
    for d, (user, item) in enumerate(drawn):
        if d in states:
            staples, last, homes = states[d]
            result["nights"].append(score_night(d, user, item, seen, staples, last, homes,
                                                prof, S._Sampler(cat, d), hh, bought,
                                                n_items))
        seen[item] = True
        bought.append((user, item, np.full(len(user), d)))
    for key in MODELS:
        result[key] = float(np.mean([n[key] for n in result["nights"]]))
    result["ceiling_over_buy_again"] = result["oracle"] / result["buy_again"] - 1
    result["staples_known_over_buy_again"] = result["staples_known"] / result["buy_again"] - 1
    return result


def purchase_probability(d, shoppers, staples, clock, homes, prof, p_explore):
    """[shoppers, items]: the chance each item is in the day's basket, the process's own
    formula: explored by one of Poisson(`explore_mean`) draws, or bought as a staple with
    `due_rate` once it ran out since `clock` (the day it was last bought; `ran_out`)."""
    from nightshelf.shop_profiles import ran_out

    p = 1.0 - np.exp(-prof.explore_mean * p_explore)
    due = ran_out(d, clock[shoppers], homes.lasts[staples[shoppers]])
    p_staple = np.where(due, prof.due_rate, prof.early_rate)
    rows = np.repeat(np.arange(len(shoppers)), staples.shape[1])
    p_keep = np.ones_like(p)
    np.multiply.at(p_keep, (rows, staples[shoppers].ravel()), 1.0 - p_staple.ravel())
    return 1.0 - (1.0 - p) * p_keep


def score_night(d, user, item, seen, staples, last, homes, prof, sampler, hh, bought, n_items):
    """NDCG@10 of the night's rankers over the households that shop on day `d`."""
    from nightshelf.shop_profiles import ran_out
    from training import metrics
    from training.lists import BUY_AGAIN_HALF_LIFE_DAYS

    shoppers = np.unique(user)
    baskets = {u: set(item[(user == u) & seen[item]].tolist()) for u in shoppers}
    shoppers = np.array([u for u in shoppers if baskets[u]])
    relevant = [baskets[u] for u in shoppers]
    past_u = np.concatenate([b[0] for b in bought])
    past_i = np.concatenate([b[1] for b in bought])
    past_d = np.concatenate([b[2] for b in bought])
    p_explore = explore_probability(sampler, hh.taste[shoppers], n_items)
    # the household's last purchase of each staple as its history shows it: an explored draw
    # of a staple item also counts, where the process's own clock does not move
    seen_last = np.full((len(last), n_items), -10**6)
    np.maximum.at(seen_last, (past_u, past_i), past_d)
    history_clock = np.take_along_axis(seen_last, staples, axis=1)
    rankers = {"oracle": purchase_probability(d, shoppers, staples, last, homes, prof,
                                              p_explore),
               "staples_known": purchase_probability(d, shoppers, staples, history_clock,
                                                     homes, prof, p_explore)}
    out = {k: [] for k in (*rankers, "buy_again_when_due", "buy_again")}
    for r, u in enumerate(shoppers):
        for name, p in rankers.items():
            p_u = np.where(seen, p[r], -1.0)  # outside the vocabulary: never in a list
            out[name].append(top10(np.argsort(-p_u, kind="stable")))
        mine = past_u == u
        w = np.bincount(past_i[mine], minlength=n_items,
                        weights=np.power(0.5, (d - past_d[mine]) / BUY_AGAIN_HALF_LIFE_DAYS))
        cand = np.flatnonzero(w > 0)
        out["buy_again"].append(top10(cand[np.argsort(-w[cand], kind="stable")]))
        # buy-again told when each item runs out: the household's own last purchase of it
        # and the item's true lifetime
        s = w[cand] * np.where(ran_out(d, seen_last[u, cand], homes.lasts[cand]), 1.0, 0.05)
        out["buy_again_when_due"].append(top10(cand[np.argsort(-s, kind="stable")]))
    return {"day": int(d), "households": int(len(shoppers)),
            "mean_basket": float(np.mean([len(baskets[u]) for u in shoppers])),
            **{k: metrics.ranking_report(np.array(v), relevant, [10])["ndcg@10"]
               for k, v in out.items()}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[13])
    p.add_argument("--users", type=int, default=1500)
    p.add_argument("--days", type=int, default=56)
    p.add_argument("--nights", type=int, default=3)
    p.add_argument("--home", default=None, help="where the shop is generated (a temporary "
                   "folder, removed after, by default)")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    t0 = time.monotonic()
    runs = []
    for seed in a.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            r = run(seed, a.users, a.days, a.nights, Path(a.home or tmp) / f"seed{seed}")
        print(f"seed {seed}: oracle NDCG@10 {r['oracle']:.4f}, buy-again {r['buy_again']:.4f}, "
              f"ceiling {r['ceiling_over_buy_again']:+.1%} over buy-again "
              f"({time.monotonic() - t0:.0f} s)", flush=True)
        runs.append(r)
    summary = {"runs": runs, "seconds": round(time.monotonic() - t0, 1)}
    for key in (*MODELS, "ceiling_over_buy_again", "staples_known_over_buy_again"):
        v = [r[key] for r in runs]
        summary[key] = {"mean": float(np.mean(v)), "min": float(np.min(v)),
                        "max": float(np.max(v))}
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=1))
    if a.out:
        Path(a.out).write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
