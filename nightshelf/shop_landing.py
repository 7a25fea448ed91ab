"""The landed form of the synthetic shop's events: event-type spellings, four timestamp
styles, the configured dirt (nulls, unknown types, broken times, exact duplicates,
double-fires), PII columns, and the file formats a shop exports (CSV, JSON lines,
Parquet); and its daily catalog snapshots."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np

from nightshelf.config import DirtConfig
from nightshelf.shop_profiles import Profile

RAW_TYPE_SPELLINGS = {"view": ["view", "page_view", "VIEW", "product_view"],
                      "add_to_cart": ["add_to_cart", "addtocart", "Cart"],
                      "purchase": ["purchase", "order", "Purchase"],
                      "favorite": ["favorite", "wishlist"]}
UNKNOWN_TYPES = ["hover", "scroll", "impression_v2"]


def pick(values, index: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=object)[index]


def _email(u: np.ndarray) -> np.ndarray:
    return np.char.add(np.char.add("shopper", u.astype(str)), "@example.com").astype(object)


def _ip(u: np.ndarray) -> np.ndarray:
    parts = [(u // 65536 % 256), (u // 256 % 256), (u % 256)]
    out = np.full(len(u), "10", dtype=object)
    for p in parts:
        out = out + "." + p.astype(str).astype(object)
    return out


def _format_times(ts: np.ndarray, style: np.ndarray) -> np.ndarray:
    """Event times in four styles: ISO-8601 UTC with ms, ISO-8601 at +02:00, epoch seconds,
    epoch milliseconds."""
    us = np.round(ts * 1e6).astype("int64").astype("datetime64[us]")
    iso_ms = np.char.add(np.datetime_as_string(us, unit="ms"), "Z")
    plus2 = np.char.add(np.datetime_as_string(us + np.timedelta64(2, "h"), unit="s"),
                        "+02:00")
    secs = ts.astype(np.int64).astype(str)
    millis = (ts * 1000).astype(np.int64).astype(str)
    out = np.empty(len(ts), dtype=object)
    for k, values in enumerate((iso_ms, plus2, secs, millis)):
        out[style == k] = values[style == k]
    return out


COLUMNS = ["event_id", "user_id", "item_id", "event_type", "event_time", "session_id", "price",
           "quantity", "email", "ip"]


def dirty_rows(events: dict, item_ids: np.ndarray, prices: np.ndarray, user_ids: np.ndarray,
               dirt: DirtConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The day's events (`user`, `item` indices, `type`, `time`, `session`) as the landed
    strings, with the configured dirt."""
    n = len(events["user"])
    u, it, ts = events["user"], events["item"], events["time"]
    etype = events["type"]
    spelled = etype.copy()
    for canonical, spellings in RAW_TYPE_SPELLINGS.items():
        sel = np.flatnonzero((etype == canonical) & (rng.random(n) >= 0.8))
        spelled[sel] = pick(spellings, rng.integers(0, len(spellings), size=len(sel)))
    qty = np.where(etype == "purchase", pick([1, 1, 1, 2, 3], rng.integers(0, 5, size=n)), 1)
    rows = {
        "event_id": ("E" + np.char.mod("%x", (ts * 1000).astype(np.int64)).astype(object)
                     + "-" + u.astype(str).astype(object) + "-"
                     + np.arange(n).astype(str).astype(object)),
        "user_id": user_ids[u], "item_id": item_ids[it], "event_type": spelled,
        "event_time": _format_times(ts, rng.integers(0, 4, size=n)),
        "session_id": events["session"],
        "price": np.char.mod("%.2f", prices[it]).astype(object),
        "quantity": qty.astype(str).astype(object), "email": _email(u), "ip": _ip(u)}
    required = ["user_id", "item_id", "event_type", "event_time"]
    nulls = rng.choice(n, size=int(n * dirt.null_required), replace=False)
    for i, col in zip(nulls, rng.integers(0, 4, size=len(nulls))):
        rows[required[col]][i] = None
    unknown = rng.choice(n, size=int(n * dirt.unknown_event_types), replace=False)
    rows["event_type"][unknown] = pick(UNKNOWN_TYPES, rng.integers(0, 3, size=len(unknown)))
    bad = rng.choice(n, size=int(n * dirt.bad_timestamps), replace=False)
    rows["event_time"][bad] = pick(["not-a-date", "2026-13-45T99:00:00Z", "yesterday"],
                                   rng.integers(0, 3, size=len(bad)))
    dup = rng.choice(n, size=int(n * dirt.exact_duplicates))
    fire = rng.choice(n, size=int(n * dirt.double_fires))
    fired = {c: v[fire].copy() for c, v in rows.items()}
    fired["event_id"] = fired["event_id"] + "-b"
    fired["event_time"] = _format_times(ts[fire] + rng.uniform(0.5, 3.5, size=len(fire)),
                                        np.zeros(len(fire), int))
    order = rng.permutation(n + len(dup) + len(fire))
    return {c: np.concatenate([v, v[dup], fired[c]])[order] for c, v in rows.items()}


def write_events(rows: dict[str, np.ndarray], folder: Path, fmt: str) -> Path:
    """Land one day's raw events as CSV, JSON lines or Parquet (all values as strings)."""
    import pyarrow as pa

    if fmt not in ("csv", "jsonl", "parquet"):
        raise ValueError(f"shop.formats: unknown format {fmt!r} (use csv, jsonl or parquet)")
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("events.*"):
        old.unlink()
    table = pa.table({c: pa.array(rows[c], pa.string()) for c in COLUMNS})
    path = folder / f"events.{fmt}"
    with path.open("wb") as out:  # a local folder or any filesystem of storage.landing
        if fmt == "csv":
            import pyarrow.csv as pacsv
            pacsv.write_csv(table, out, pacsv.WriteOptions(quoting_style="needed"))
        elif fmt == "jsonl":
            table.to_pandas().to_json(out, orient="records", lines=True)
        else:
            import pyarrow.parquet as pq
            pq.write_table(table, out)
    return path


def write_catalog_snapshot(cat, day: int, start_day: date, folder: Path,
                           rng: np.random.Generator, prof: Profile) -> Path:
    """The day's catalog (`cat`, a `shop.Catalog`): every item live by then, a few
    temporarily unavailable; the optional columns the profile's catalog has."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    folder.mkdir(parents=True, exist_ok=True)
    live = np.flatnonzero(cat.first_day <= day)
    available = rng.random(len(live)) > 0.04
    first_seen = (np.datetime64(start_day, "D") + cat.first_day[live].astype("timedelta64[D]"))
    columns = {
        "item_id": pa.array(cat.item_id[live], pa.string()),
        "title": pa.array(cat.title[live], pa.string()),
        "category": pa.array(cat.category[live], pa.string()),
        "brand": pa.array(cat.brand[live], pa.string()), "price": cat.price[live],
        "available": available}
    if prof.catalog_repurchasable:
        columns["repurchasable"] = cat.repurchasable[live]
    if prof.catalog_first_seen:
        columns["first_seen"] = pa.array(first_seen, pa.date32())
    table = pa.table(columns)
    path = folder / "catalog.parquet"
    with path.open("wb") as out:
        pq.write_table(table, out)
    return path
