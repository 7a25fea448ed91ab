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

Everything is drawn from one seeded generator: the same config writes the same files.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import numpy as np

from nightshelf import lake
from nightshelf.config import Config, ShopConfig

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
RAW_TYPE_SPELLINGS = {"view": ["view", "page_view", "VIEW", "product_view"],
                      "add_to_cart": ["add_to_cart", "addtocart", "Cart"],
                      "purchase": ["purchase", "order", "Purchase"],
                      "favorite": ["favorite", "wishlist"]}
UNKNOWN_TYPES = ["hover", "scroll", "impression_v2"]


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
    leaves = _leaves()
    tops = list(TAXONOMY)
    brands = _brands(rng, 5 * len(tops))
    top_brands = {t: brands[i * 5:(i + 1) * 5] for i, t in enumerate(tops)}
    n = shop.items + shop.new_items_per_day * shop.days
    leaf_w = rng.dirichlet(np.full(len(leaves), 3.0))
    leaf = rng.choice(len(leaves), size=n, p=leaf_w)
    titles, cats, brand_col, price, rep = [], [], [], [], []
    for i in range(n):
        top, lf, nouns = leaves[leaf[i]]
        brand = rng.choice(top_brands[top])
        premium = 0.6 + (brands.index(brand) % 5) * 0.25
        p = BASE_PRICE[top] * premium * float(rng.lognormal(0.0, 0.35))
        titles.append(f"{brand} {rng.choice(ADJECTIVES)} {rng.choice(nouns)} {i % 7 + 1}")
        cats.append(f"{top} > {lf}")
        brand_col.append(brand)
        price.append(round(p, 2))
        rep.append(top in CONSUMABLE_TOPS or lf in CONSUMABLE_LEAVES)
    first_day = np.zeros(n, dtype=int)
    first_day[shop.items:] = np.repeat(np.arange(1, shop.days + 1),
                                       shop.new_items_per_day)[: n - shop.items]
    popularity = 1.0 / np.power(rng.permutation(n) + 1.0, 0.9)
    price_arr = np.array(price)
    related = np.zeros((n, 3), dtype=int)
    for i in range(n):
        same = np.flatnonzero(leaf == leaf[i])
        same = same[same != i]
        if len(same) == 0:
            related[i] = i
            continue
        closeness = 1.0 / (1.0 + np.abs(np.log(price_arr[same] / price_arr[i])) * 4)
        related[i] = rng.choice(same, size=3, p=closeness / closeness.sum())
    ids = np.array([f"P{i:05d}" for i in range(n)])
    return Catalog(ids, np.array(titles), np.array(cats), leaf, np.array(brand_col), price_arr,
                   np.array(rep), first_day, popularity, related)


@dataclass
class Users:
    user_id: np.ndarray
    taste: np.ndarray         # [n_users, n_leaves]
    activity: np.ndarray      # expected sessions per day
    first_day: np.ndarray
    email: np.ndarray
    ip: np.ndarray


def make_users(shop: ShopConfig, n_leaves: int, rng: np.random.Generator) -> Users:
    n = shop.users
    taste = rng.dirichlet(np.full(n_leaves, 0.15), size=n)
    activity = np.clip(rng.lognormal(np.log(0.35), 0.8, size=n), 0.03, 4.0)
    first_day = np.where(rng.random(n) < shop.initial_user_fraction, 0,
                         rng.integers(1, shop.days + 1, size=n))
    ids = np.array([f"U{i:06d}" for i in range(n)])
    email = np.array([f"shopper{i}@example.com" for i in range(n)])
    ip = np.array([f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in range(n)])
    return Users(ids, taste, activity, first_day, email, ip)


class _Day:
    """Collects one day's clean events as columns."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def add(self, user: int, item: int, etype: str, ts: float, session: str, price: float,
            qty: int) -> None:
        self.rows.append((user, item, etype, ts, session, price, qty))


def _simulate_day(day: int, day_start: float, cat: Catalog, users: Users,
                  bought: dict[int, list[int]], rng: np.random.Generator) -> _Day:
    out = _Day()
    live_items = np.flatnonzero(cat.first_day <= day)
    novelty = np.where(cat.first_day[live_items] >= day - 3, 3.0, 1.0)
    by_leaf: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for lf in np.unique(cat.leaf[live_items]):
        members = live_items[cat.leaf[live_items] == lf]
        w = cat.popularity[members] * novelty[cat.leaf[live_items] == lf]
        by_leaf[int(lf)] = (members, w / w.sum())
    leaf_ids = np.array(sorted(by_leaf))
    active = np.flatnonzero(users.first_day <= day)
    n_sessions = rng.poisson(users.activity[active])
    for u, k in zip(active, n_sessions):
        for s in range(int(k)):
            t = day_start + float(rng.beta(3, 2)) * 86000.0
            session = f"S{day:03d}-{u}-{s}"
            taste = users.taste[u, leaf_ids]
            leaf = int(rng.choice(leaf_ids, p=taste / taste.sum()))
            members, w = by_leaf[leaf]
            item = int(rng.choice(members, p=w))
            for _ in range(1 + rng.geometric(0.2)):
                out.add(u, item, "view", t, session, cat.price[item], 1)
                r = rng.random()
                if r < 0.09:
                    t += float(rng.uniform(5, 60))
                    out.add(u, item, "add_to_cart", t, session, cat.price[item], 1)
                    if rng.random() < 0.45:
                        t += float(rng.uniform(30, 300))
                        qty = int(rng.choice([1, 1, 1, 2, 3]))
                        out.add(u, item, "purchase", t, session, cat.price[item], qty)
                        bought.setdefault(u, []).append(item)
                elif r < 0.11:
                    out.add(u, item, "favorite", t + 2, session, cat.price[item], 1)
                t += float(rng.uniform(10, 120))
                nxt = rng.random()
                if nxt < 0.6:
                    cand = cat.related[item][cat.first_day[cat.related[item]] <= day]
                    item = int(rng.choice(cand)) if len(cand) else item
                elif nxt < 0.85:
                    item = int(rng.choice(members, p=w))
                else:
                    leaf = int(rng.choice(leaf_ids, p=taste / taste.sum()))
                    members, w = by_leaf[leaf]
                    item = int(rng.choice(members, p=w))
        # consumables run out: re-buy
        for item in set(bought.get(u, [])):
            if cat.repurchasable[item] and rng.random() < 0.03:
                t = day_start + float(rng.uniform(0, 86000))
                session = f"S{day:03d}-{u}-r{item}"
                out.add(u, item, "view", t, session, cat.price[item], 1)
                out.add(u, item, "add_to_cart", t + 20, session, cat.price[item], 1)
                out.add(u, item, "purchase", t + 90, session, cat.price[item], 1)
    return out


def _format_time(ts: float, style: int) -> str:
    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    if style == 0:
        return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if style == 1:
        return dt.astimezone(timezone(timedelta(hours=2))).isoformat(timespec="seconds")
    if style == 2:
        return str(int(ts))
    return str(int(ts * 1000))


def _dirty_rows(day: _Day, cat: Catalog, users: Users, shop: ShopConfig,
                rng: np.random.Generator) -> list[dict]:
    dirt = shop.dirt
    rows = []
    for i, (u, item, etype, ts, session, price, qty) in enumerate(day.rows):
        spell = RAW_TYPE_SPELLINGS[etype]
        rows.append({
            "event_id": f"E{int(ts * 1000):x}-{u}-{i}",
            "user_id": users.user_id[u], "item_id": cat.item_id[item],
            "event_type": spell[0] if rng.random() < 0.8 else str(rng.choice(spell)),
            "event_time": _format_time(ts, int(rng.integers(0, 4))),
            "session_id": session, "price": f"{price:.2f}", "quantity": str(qty),
            "email": users.email[u], "ip": users.ip[u],
        })
    n = len(rows)
    for i in rng.choice(n, size=int(n * dirt.null_required), replace=False):
        rows[i][str(rng.choice(["user_id", "item_id", "event_type", "event_time"]))] = None
    for i in rng.choice(n, size=int(n * dirt.unknown_event_types), replace=False):
        rows[i]["event_type"] = str(rng.choice(UNKNOWN_TYPES))
    for i in rng.choice(n, size=int(n * dirt.bad_timestamps), replace=False):
        rows[i]["event_time"] = str(rng.choice(["not-a-date", "2026-13-45T99:00:00Z", "yesterday"]))
    extra = [dict(rows[i]) for i in rng.choice(n, size=int(n * dirt.exact_duplicates))]
    for i in rng.choice(n, size=int(n * dirt.double_fires)):
        r = dict(rows[i])
        ts = day.rows[i][3] + float(rng.uniform(0.5, 3.5))
        r["event_id"] = r["event_id"] + "-b"
        r["event_time"] = _format_time(ts, 0)
        extra.append(r)
    rows.extend(extra)
    order = rng.permutation(len(rows))
    return [rows[i] for i in order]


COLUMNS = ["event_id", "user_id", "item_id", "event_type", "event_time", "session_id", "price",
           "quantity", "email", "ip"]


def write_events(rows: list[dict], folder: Path, fmt: str) -> Path:
    """Land one day's raw events as CSV, JSON lines or Parquet (all values as strings)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("events.*"):
        old.unlink()
    if fmt == "csv":
        import csv
        path = folder / "events.csv"
        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=COLUMNS)
            w.writeheader()
            w.writerows(rows)
    elif fmt == "jsonl":
        path = folder / "events.jsonl"
        with path.open("w") as fh:
            for r in rows:
                fh.write(json.dumps(r) + "\n")
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq
        path = folder / "events.parquet"
        table = pa.table({c: pa.array([r.get(c) for r in rows], pa.string()) for c in COLUMNS})
        pq.write_table(table, path)
    else:
        raise ValueError(f"shop.formats: unknown format {fmt!r} (use csv, jsonl or parquet)")
    return path


def generate(cfg: Config, days: int | None = None, end: str | None = None) -> dict:
    """Write `days` landed days ending at `end` (config defaults) under the home folder."""
    shop = cfg.shop
    days = days or shop.days
    end_day = lake.parse_ds(end or shop.end)
    start_day = end_day - timedelta(days=days - 1)
    rng = np.random.default_rng(shop.seed)
    shop = dataclasses.replace(shop, days=days)
    cat = make_catalog(shop, rng)
    users = make_users(shop, len(_leaves()), rng)
    bought: dict[int, list[int]] = {}
    summary = {"days": [], "items": int(len(cat.item_id)), "users": int(len(users.user_id))}
    for d in range(days):
        day_date = start_day + timedelta(days=d)
        ds = day_date.isoformat()
        day_start = datetime.combine(day_date, time.min, tzinfo=timezone.utc).timestamp()
        sim = _simulate_day(d, day_start, cat, users, bought, rng)
        rows = _dirty_rows(sim, cat, users, shop, rng)
        fmt = shop.formats[d % len(shop.formats)]
        write_events(rows, lake.landing_events(cfg, ds), fmt)
        write_catalog_snapshot(cat, d, start_day, lake.landing_catalog(cfg, ds), rng)
        summary["days"].append({"ds": ds, "rows": len(rows), "format": fmt})
        log.info("landed %s: %d raw events (%s)", ds, len(rows), fmt)
    return summary


def write_catalog_snapshot(cat: Catalog, day: int, start_day: date, folder: Path,
                           rng: np.random.Generator) -> Path:
    """The day's catalog: every item live by then, a few temporarily unavailable."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    folder.mkdir(parents=True, exist_ok=True)
    live = np.flatnonzero(cat.first_day <= day)
    available = rng.random(len(live)) > 0.04
    first_seen = [start_day + timedelta(days=int(cat.first_day[i])) for i in live]
    table = pa.table({
        "item_id": cat.item_id[live], "title": cat.title[live], "category": cat.category[live],
        "brand": cat.brand[live], "price": cat.price[live], "available": available,
        "repurchasable": cat.repurchasable[live],
        "first_seen": pa.array(first_seen, pa.date32()),
    })
    path = folder / "catalog.parquet"
    pq.write_table(table, path)
    return path
