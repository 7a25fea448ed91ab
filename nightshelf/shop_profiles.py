"""Shop profiles: the shapes real shops have, each seeded and documented (`shop.profile`).

- `default`: the shop the pipeline grew up on: a funnel of views, carts and purchases over a
  small catalog that is all in use, consumables re-bought now and then, first-seen dates and
  `repurchasable` flags in the catalog.
- `grocery`: a grocery export as retailers hand it over. Purchases only (no views or
  carts); households shop about once a week on their own weekday (plus rare top-up trips),
  and most of each basket (about 15 items) is the household's 30 staples bought again when
  they run out: each item lasts 1, 2, 4 or 8 weeks, and a staple is bought with `due_rate`
  once that long has passed since the household last bought it, else with `early_rate`;
  a few items a trip are new to the household (its tastes drift); a large catalog
  (`catalog_factor` x `shop.items`) with a steep popularity law, so most of it is never
  bought in the window; the catalog has no first-seen dates and no repurchasable flags.
- `launches`: the default shop with a stream of launches: 15x the new items a day, each
  drawn 12x its popularity in its first 2 days, so a good share of what users touch on a
  day is items nobody had touched the day before. Their titles carry the signal (the
  brand's and the leaf category's words, as every title does) and nothing else does yet:
  the shop where item text is worth measuring.
- `marketplace`: views-heavy browsing with rare purchases (a cart every 25 views, a third of
  carts bought), long sessions, a large catalog and many new items every day
  (`new_items_factor` x `shop.new_items_per_day`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nightshelf.config import ConfigError


@dataclass(frozen=True)
class Profile:
    name: str
    catalog_factor: int = 1          # catalog size: shop.items x this
    new_items_factor: int = 1        # new items a day: shop.new_items_per_day x this
    popularity_exponent: float = 0.9  # item popularity ~ 1 / rank^exponent
    view_to_cart: float = 0.09
    cart_to_purchase: float = 0.45
    session_stop: float = 0.2        # sessions: 1 + geometric(session_stop) views
    rebuy_per_day: float = 0.03      # a bought consumable is bought again with this a day
    catalog_first_seen: bool = True  # the catalog snapshot has first-seen dates
    catalog_repurchasable: bool = True  # ... and repurchasable flags
    baskets: bool = False            # weekly baskets of purchases only (grocery)
    staples: int = 30                # grocery: a household's usual items
    due_rate: float = 0.85           # ... each bought on a trip with this once it ran out
    early_rate: float = 0.03         # ... and with this before
    explore_mean: float = 2.0        # ... plus Poisson(this) other items of its taste
    weekly_trip: float = 0.85        # a household shops on its weekday with this
    top_up_trip: float = 0.04        # ... and on another day with this
    new_staple: float = 0.1          # a trip makes one explored item a staple with this
    launch_boost: float = 3.0        # a new item is drawn this many times its popularity
    launch_days: int = 3             # ... in its first this many days


PROFILES = {
    "default": Profile("default"),
    "grocery": Profile("grocery", catalog_factor=10, popularity_exponent=1.8,
                       catalog_first_seen=False, catalog_repurchasable=False, baskets=True),
    "launches": Profile("launches", new_items_factor=15, launch_boost=12.0, launch_days=2),
    "marketplace": Profile("marketplace", catalog_factor=5, new_items_factor=20,
                           popularity_exponent=1.0, view_to_cart=0.04, cart_to_purchase=0.33,
                           session_stop=0.12, rebuy_per_day=0.002),
}


def profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ConfigError(f"config shop.profile: unknown profile {name!r}; known: "
                          f"{sorted(PROFILES)}")
    return PROFILES[name]


LASTS_WEEKS, LASTS_P = np.array([1, 2, 4, 8]), np.array([0.25, 0.3, 0.3, 0.15])


@dataclass
class Households:
    """Grocery households: a shopping weekday and a row of staple items each, with the day
    each was last bought; and how many days each catalog item lasts."""
    weekday: np.ndarray     # [n_users] 0..6
    staples: np.ndarray     # [n_users, staples] item indices
    last: np.ndarray        # [n_users, staples] day index of the last purchase
    lasts: np.ndarray       # [n_items] days an item lasts


def make_households(n_users: int, n_items: int, prof: Profile, draw_staples,
                    rng: np.random.Generator) -> Households:
    """`draw_staples(users)` -> one item per user in `users`, by taste and popularity; each
    staple starts at a random point of its cycle."""
    weekday = rng.integers(0, 7, size=n_users)
    every = np.repeat(np.arange(n_users), prof.staples)
    staples = draw_staples(every).reshape(n_users, prof.staples)
    lasts = 7 * rng.choice(LASTS_WEEKS, size=n_items, p=LASTS_P)
    last = -rng.integers(0, lasts[staples] + 1)
    return Households(weekday, staples, last, lasts)


def ran_out(day: int, last: np.ndarray, lasts: np.ndarray) -> np.ndarray:
    """Whether an item bought on day `last` that lasts `lasts` days runs out by `day` (3 days
    early counts: a household restocks about when it runs out)."""
    return day - last >= lasts - 3


def basket_day(day: int, day_start: float, active: np.ndarray, homes: Households,
               prof: Profile, explore, rng: np.random.Generator) -> dict:
    """One day of grocery purchases as event columns (`user`, `item`, `type`, `time`,
    `session`): each shopping household buys each staple that ran out with `due_rate`
    (others with `early_rate`) and Poisson(`explore_mean`) items `explore(users)` draws; a
    basket's items are distinct and seconds apart. A trip sometimes turns one explored item
    into a staple (tastes drift)."""
    weekly = homes.weekday[active] == day % 7
    p = np.where(weekly, prof.weekly_trip, prof.top_up_trip)
    shoppers = active[rng.random(len(active)) < p]
    n = len(shoppers)
    items = homes.staples[shoppers]
    due = ran_out(day, homes.last[shoppers], homes.lasts[items])
    take = rng.random((n, prof.staples)) < np.where(due, prof.due_rate, prof.early_rate)
    s_user = np.repeat(shoppers, take.sum(axis=1))
    s_item = items[take]
    homes.last[shoppers] = np.where(take, day, homes.last[shoppers])
    k = rng.poisson(prof.explore_mean, size=n)
    e_user = np.repeat(shoppers, k)
    e_item = explore(e_user) if len(e_user) else np.zeros(0, np.int64)
    # tastes drift: one explored item of a trip replaces a random staple
    first = np.cumsum(k) - k
    swap = (k > 0) & (rng.random(n) < prof.new_staple)
    slot = rng.integers(0, prof.staples, size=n)
    homes.staples[shoppers[swap], slot[swap]] = e_item[first[swap]]
    homes.last[shoppers[swap], slot[swap]] = day
    user = np.concatenate([s_user, e_user]).astype(np.int64)
    item = np.concatenate([s_item, e_item]).astype(np.int64)
    _, idx = np.unique(user * (1 << 32) + item, return_index=True)
    user, item = user[np.sort(idx)], item[np.sort(idx)]
    order = np.argsort(user, kind="stable")
    user, item = user[order], item[order]
    trip_start = day_start + rng.beta(3, 2, size=n) * 80000.0  # shoppers are sorted
    starts = trip_start[np.searchsorted(shoppers, user)]
    pos = np.arange(len(user)) - np.searchsorted(user, user)
    session = np.char.add(np.char.add(f"S{day:03d}-", user.astype(str)), "-b").astype(object)
    return {"user": user, "item": item,
            "type": np.full(len(user), "purchase", dtype=object),
            "time": starts + pos * 15.0 + rng.uniform(0, 10, size=len(user)),
            "session": session}
