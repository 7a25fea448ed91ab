"""A synthetic shop: a catalog and users with latent tastes that drive days of raw events.

What makes it worth training on:
- users have concentrated tastes over leaf categories and a price level; activity is
  heavy-tailed (a few users do most of the browsing);
- item popularity follows a power law; each item has a few "related" items (same leaf,
  similar price) that shoppers move to next, which is the sequential signal a model can learn;
- sessions follow a funnel (views >> add-to-carts > purchases), consumables are re-bought;
- new users sign up and new items appear every day.

And the dirt real logs have, at configured rates: exact duplicates, double-fired events seconds
apart, mixed timestamp formats, nulls in required fields, unknown event types, unparsable
timestamps, raw event-type synonyms, and PII columns (e-mail, IP).

Everything is drawn from one seeded generator: the same config writes the same files. It
is vectorised and works a day at a time: memory is one day's events plus the users and the
catalog (500k users x 30 days in minutes, `make bench-scale`).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone

import numpy as np

from nightshelf import lake
from nightshelf.config import Config, ShopConfig
from nightshelf.shop_landing import dirty_rows, pick, write_catalog_snapshot, write_events
from nightshelf.shop_profiles import Profile, basket_day, make_households, profile

log = logging.getLogger(__name__)

TAXONOMY = {
    "Beauty": {"Skincare": ["Serum", "Moisturizer", "Cleanser", "Toner"],
               "Makeup": ["Lipstick", "Mascara", "Foundation"],
               "Haircare": ["Shampoo", "Conditioner", "Hair Oil"]},
    "Home": {"Kitchen": ["Skillet", "Knife", "Kettle"],
             "Bedding": ["Duvet", "Pillow", "Sheet Set"],
             "Decor": ["Vase", "Candle", "Frame"]},
    "Sports": {"Running": ["Running Shoe", "Running Shorts"],
               "Yoga": ["Yoga Mat", "Yoga Block"],
               "Cycling": ["Helmet", "Bike Light"]},
    "Electronics": {"Audio": ["Headphones", "Speaker"],
                    "Accessories": ["Charger", "Cable", "Phone Case"]},
    "Grocery": {"Coffee": ["Coffee Beans", "Ground Coffee"],
                "Tea": ["Green Tea", "Black Tea"],
                "Snacks": ["Granola", "Dark Chocolate"]},
    "Pets": {"Dog": ["Dog Food", "Dog Toy"], "Cat": ["Cat Food", "Cat Litter"]},
}
CONSUMABLE_TOPS = {"Grocery", "Pets"}
CONSUMABLE_LEAVES = {"Skincare", "Haircare"}
BASE_PRICE = {"Beauty": 25, "Home": 45, "Sports": 60, "Electronics": 80, "Grocery": 12,
              "Pets": 30}
BRAND_SYLLABLES = ["lu", "mo", "ra", "nor", "vik", "ze", "ta", "ka", "sol", "ve", "ri", "an",
                   "bel", "do", "fi", "gra"]
ADJECTIVES = ["Classic", "Pure", "Daily", "Ultra", "Soft", "Bold", "Fresh", "Urban", "Nordic",
              "Organic", "Pro", "Everyday", "Deluxe", "Light"]


@dataclass
class Catalog:
    item_id: np.ndarray
    title: np.ndarray
    category: np.ndarray      # "Top > Leaf"
    leaf: np.ndarray          # leaf index
    brand: np.ndarray
    price: np.ndarray
    repurchasable: np.ndarray
    first_day: np.ndarray     # day index the item appears
    popularity: np.ndarray
    related: np.ndarray       # [n_items, 3] indices


def _leaves() -> list[tuple[str, str, list[str]]]:
    return [(top, leaf, nouns) for top, leaves in TAXONOMY.items()
            for leaf, nouns in leaves.items()]


def _brands(rng: np.random.Generator, n: int) -> list[str]:
    names: set[str] = set()
    while len(names) < n:
        k = rng.integers(2, 4)
        names.add("".join(rng.choice(BRAND_SYLLABLES, size=k)).capitalize())
    return sorted(names)


def make_catalog(shop: ShopConfig, rng: np.random.Generator) -> Catalog:
    """Items with a leaf category, a brand of their top category, a price level by brand, a
    power-law popularity and three related items (same leaf, nearest in price), sized and
    shaped by the shop's profile."""
    prof = profile(shop.profile)
    leaves = _leaves()
    tops = list(TAXONOMY)
    brands = _brands(rng, 5 * len(tops))
    initial = shop.items * prof.catalog_factor
    per_day = shop.new_items_per_day * prof.new_items_factor
    n = initial + per_day * shop.days
    leaf = rng.choice(len(leaves), size=n, p=rng.dirichlet(np.full(len(leaves), 3.0)))
    top_of_leaf = np.array([tops.index(t) for t, _, _ in leaves])
    brand_idx = top_of_leaf[leaf] * 5 + rng.integers(0, 5, size=n)
    premium = 0.6 + (brand_idx % 5) * 0.25
    base = np.array([BASE_PRICE[t] for t in tops])[top_of_leaf[leaf]]
    price = np.round(base * premium * rng.lognormal(0.0, 0.35, size=n), 2)
    noun = np.array([leaves[lf][2][k % len(leaves[lf][2])]
                     for lf, k in zip(leaf, rng.integers(0, 6, size=n))], dtype=object)
    brand = pick(brands, brand_idx)
    adjective = pick(ADJECTIVES, rng.integers(0, len(ADJECTIVES), size=n))
    number = (np.arange(n) % 7 + 1).astype(str)
    title = brand + " " + adjective + " " + noun + " " + number.astype(object)
    category = pick([f"{t} > {lf}" for t, lf, _ in leaves], leaf)
    consumable = np.array([t in CONSUMABLE_TOPS or lf in CONSUMABLE_LEAVES
                           for t, lf, _ in leaves])
    first_day = np.zeros(n, dtype=int)
    first_day[initial:] = np.repeat(np.arange(1, shop.days + 1), per_day)[: n - initial]
    popularity = 1.0 / np.power(rng.permutation(n) + 1.0, prof.popularity_exponent)
    # related: three of the six items of the same leaf nearest in price
    order = np.lexsort((price, leaf))
    pos = np.empty(n, dtype=int)
    pos[order] = np.arange(n)
    offsets = np.array([-3, -2, -1, 1, 2, 3])
    near = np.clip(pos[:, None] + offsets[None, :], 0, n - 1)
    cand = order[near]
    cand = np.where(leaf[cand] == leaf[:, None], cand, np.arange(n)[:, None])
    chosen = np.argsort(rng.random((n, 6)), axis=1)[:, :3]
    related = np.take_along_axis(cand, chosen, axis=1)
    ids = np.char.add("P", np.char.zfill(np.arange(n).astype(str), 5)).astype(object)
    return Catalog(ids, title, category, leaf, brand, price, consumable[leaf], first_day,
                   popularity, related)


@dataclass
class Users:
    user_id: np.ndarray
    taste: np.ndarray         # [n_users, n_leaves] cumulative taste (last column 1)
    activity: np.ndarray      # expected sessions per day
    first_day: np.ndarray


def make_users(shop: ShopConfig, n_leaves: int, rng: np.random.Generator) -> Users:
    n = shop.users
    taste = np.cumsum(rng.dirichlet(np.full(n_leaves, 0.15), size=n).astype(np.float32),
                      axis=1)
    taste[:, -1] = 1.0
    activity = np.clip(rng.lognormal(np.log(0.35), 0.8, size=n), 0.03, 4.0)
    first_day = np.where(rng.random(n) < shop.initial_user_fraction, 0,
                         rng.integers(1, shop.days + 1, size=n))
    ids = np.char.add("U", np.char.zfill(np.arange(n).astype(str), 6)).astype(object)
    return Users(ids, taste, activity, first_day)


class _Sampler:
    """Draws items of a leaf by popularity (x `launch_boost` for items new in the last
    `launch_days` days: 3 and 3 but in the `launches` profile)."""

    def __init__(self, cat: Catalog, day: int, boost: float = 3.0, days: int = 3):
        live = np.flatnonzero(cat.first_day <= day)
        w = cat.popularity[live] * np.where(cat.first_day[live] >= day - days, boost, 1.0)
        order = np.lexsort((live, cat.leaf[live]))
        self.items, w, leaf = live[order], w[order], cat.leaf[live][order]
        n_leaves = int(cat.leaf.max()) + 1
        self.start = np.searchsorted(leaf, np.arange(n_leaves))
        self.end = np.searchsorted(leaf, np.arange(n_leaves), side="right")
        cum = np.cumsum(w)
        base = np.concatenate([[0.0], cum])[self.start]
        self.cum, self.base = cum, base
        self.total = np.where(self.end > self.start, cum[np.maximum(self.end - 1, 0)] - base, 0)
        self.has = self.end > self.start

    def draw(self, leaves: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        u = self.base[leaves] + rng.random(len(leaves)) * self.total[leaves]
        k = np.searchsorted(self.cum, u, side="right")
        return self.items[np.clip(k, self.start[leaves], np.maximum(self.end[leaves] - 1, 0))]


def _taste_leaf(users: Users, who: np.ndarray, sampler: _Sampler,
                rng: np.random.Generator) -> np.ndarray:
    """A leaf per user in `who`, by their taste, among leaves with live items."""
    leaf = (users.taste[who] < rng.random(len(who))[:, None]).sum(axis=1)
    leaf = np.minimum(leaf, users.taste.shape[1] - 1)
    bad = ~sampler.has[leaf]
    if bad.any():  # a leaf with no live item yet: the user's next best leaf that has one
        live = np.flatnonzero(sampler.has)
        leaf[bad] = live[rng.integers(0, len(live), size=int(bad.sum()))]
    return leaf


def _simulate_day(day: int, day_start: float, cat: Catalog, users: Users,
                  bought: np.ndarray, rng: np.random.Generator,
                  prof: Profile) -> tuple[dict, np.ndarray]:
    """One day of clean events as columns, and the (user, item) repurchasable purchases so
    far. Sessions: a leaf by taste, a first item by popularity, then 1 + geometric(0.2)
    views, each moving to a related item (60%), another of the leaf (25%) or of another
    tasted leaf (15%); a view becomes a cart 9% of the time, a cart a purchase 45%; 2%
    favourites. Consumables run out: each repurchasable item bought earlier is bought again
    with 3% a day. (The rates are the default profile's; see `shop_profiles`.)"""
    sampler = _Sampler(cat, day, prof.launch_boost, prof.launch_days)
    active = np.flatnonzero(users.first_day <= day)
    k = rng.poisson(users.activity[active])
    s_user = np.repeat(active, k)
    n_s = len(s_user)
    s_index = np.arange(n_s) - np.repeat(np.cumsum(k) - k, k)
    t = day_start + rng.beta(3, 2, size=n_s) * 86000.0
    leaf = _taste_leaf(users, s_user, sampler, rng)
    item = sampler.draw(leaf, rng)
    length = 1 + rng.geometric(prof.session_stop, size=n_s)
    cols: dict[str, list] = {c: [] for c in ("user", "item", "type", "time", "session")}
    session = np.char.add(np.char.add(np.char.add(f"S{day:03d}-", s_user.astype(str)), "-"),
                          s_index.astype(str)).astype(object)

    def emit(mask, etype, times):
        cols["user"].append(s_user[mask])
        cols["item"].append(item[mask])
        cols["type"].append(np.full(int(mask.sum()), etype, dtype=object))
        cols["time"].append(times[mask])
        cols["session"].append(session[mask])

    new_bought = []
    for step in range(int(length.max(initial=0))):
        on = length > step
        emit(on, "view", t)
        r = rng.random(n_s)
        cart = on & (r < prof.view_to_cart)
        t_cart = t + rng.uniform(5, 60, size=n_s)
        emit(cart, "add_to_cart", t_cart)
        buy = cart & (rng.random(n_s) < prof.cart_to_purchase)
        t_buy = t_cart + rng.uniform(30, 300, size=n_s)
        emit(buy, "purchase", t_buy)
        new_bought.append(np.stack([s_user[buy], item[buy]], axis=1))
        emit(on & ~cart & (r < prof.view_to_cart + 0.02), "favorite", t + 2)
        t = np.where(cart, np.where(buy, t_buy, t_cart), t) + rng.uniform(10, 120, size=n_s)
        nxt = rng.random(n_s)
        rel = cat.related[item, rng.integers(0, 3, size=n_s)]
        rel = np.where(cat.first_day[rel] <= day, rel, item)
        other_leaf = _taste_leaf(users, s_user, sampler, rng)
        item = np.where(nxt < 0.6, rel, np.where(nxt < 0.85, sampler.draw(leaf, rng),
                                                 sampler.draw(other_leaf, rng)))
        leaf = np.where(nxt < 0.85, leaf, other_leaf)
    # consumables run out: re-buy
    again = bought[rng.random(len(bought)) < prof.rebuy_per_day] if len(bought) else bought
    if len(again):
        t0 = day_start + rng.uniform(0, 86000, size=len(again))
        u, it = again[:, 0], again[:, 1]
        sess = np.char.add(np.char.add(np.char.add(f"S{day:03d}-", u.astype(str)), "-r"),
                           it.astype(str)).astype(object)
        for etype, dt in (("view", 0.0), ("add_to_cart", 20.0), ("purchase", 90.0)):
            cols["user"].append(u)
            cols["item"].append(it)
            cols["type"].append(np.full(len(u), etype, dtype=object))
            cols["time"].append(t0 + dt)
            cols["session"].append(sess)
    events = {c: np.concatenate(v) if v else np.zeros(0) for c, v in cols.items()}
    fresh = np.concatenate(new_bought) if new_bought else np.zeros((0, 2), int)
    fresh = fresh[cat.repurchasable[fresh[:, 1]]] if len(fresh) else fresh
    merged = np.unique(np.concatenate([bought, fresh]), axis=0) if len(fresh) else bought
    return events, merged


def generate(cfg: Config, days: int | None = None, end: str | None = None) -> dict:
    """Write `days` landed days ending at `end` (config defaults) under the home folder, one
    day at a time: memory is one day's events plus the users and the catalog. The shape of
    the shop is `shop.profile` (`nightshelf.shop_profiles`)."""
    shop = cfg.shop
    prof = profile(shop.profile)
    days = days or shop.days
    end_day = lake.parse_ds(end or shop.end)
    start_day = end_day - timedelta(days=days - 1)
    rng = np.random.default_rng(shop.seed)
    shop = dataclasses.replace(shop, days=days)
    cat = make_catalog(shop, rng)
    users = make_users(shop, len(_leaves()), rng)
    homes = None
    if prof.baskets:
        first = _Sampler(cat, 0)
        homes = make_households(len(users.user_id), len(cat.item_id), prof,
                                lambda who: first.draw(_taste_leaf(users, who, first, rng),
                                                       rng), rng)
    bought = np.zeros((0, 2), dtype=np.int64)
    summary = {"days": [], "items": int(len(cat.item_id)), "users": int(len(users.user_id)),
               "profile": prof.name}
    for d in range(days):
        day_date = start_day + timedelta(days=d)
        ds = day_date.isoformat()
        day_start = datetime.combine(day_date, time.min, tzinfo=timezone.utc).timestamp()
        if homes is not None:
            sampler = _Sampler(cat, d)
            active = np.flatnonzero(users.first_day <= d)
            events = basket_day(d, day_start, active, homes, prof, lambda who: sampler.draw(
                _taste_leaf(users, who, sampler, rng), rng), rng)
        else:
            events, bought = _simulate_day(d, day_start, cat, users, bought, rng, prof)
        rows = dirty_rows(events, cat.item_id, cat.price, users.user_id, shop.dirt, rng)
        fmt = shop.formats[d % len(shop.formats)]
        write_events(rows, lake.landing_events(cfg, ds), fmt)
        write_catalog_snapshot(cat, d, start_day, lake.landing_catalog(cfg, ds), rng, prof)
        lake.mark_landed(cfg, ds)
        n_rows = len(rows["user_id"])
        summary["days"].append({"ds": ds, "rows": n_rows, "format": fmt})
        log.info("landed %s: %d raw events (%s)", ds, n_rows, fmt)
    return summary
