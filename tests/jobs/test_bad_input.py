"""The catalogue of bad input, each case through the real clean job and the real GX suites.

Every case lands one day of files (a clean base of 200 events plus the case's bad rows) in a
fresh home, runs `jobs.clean.run` on local Spark, and asserts the exact counts. Row-level
problems end in quarantine with a reason (and the raw and clean suites still pass);
file- and schema-level problems stop the night with an error naming the file, the column
and the fix. In every case rows in = clean + duplicates + quarantined.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta, timezone

import pytest

from nightshelf import lake
from nightshelf.records import CleanCounts

pytestmark = pytest.mark.spark

DS = "2026-11-22"
DAY = datetime(2026, 11, 22, tzinfo=timezone.utc)
ITEMS = [f"I{i:03d}" for i in range(30)]
TYPES = ["view", "view", "add_to_cart", "purchase", "favorite"]
COLUMNS = ["event_id", "user_id", "item_id", "event_type", "event_time", "session_id", "price",
           "quantity", "email", "ip"]


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def event(eid: str, user: str = "u0", item: str = "I000", etype: str = "view",
          when: str | None = None, price: str = "10.00", quantity: str = "1") -> dict:
    return {"event_id": eid, "user_id": user, "item_id": item, "event_type": etype,
            "event_time": when or iso(DAY + timedelta(hours=20)), "session_id": f"s-{user}",
            "price": price, "quantity": quantity, "email": f"{user}@shop.example",
            "ip": "203.0.113.7"}


def base_rows() -> list[dict]:
    """200 usable events: 10 users x 20, minutes apart, no two alike."""
    rows = []
    for u in range(10):
        for j in range(20):
            t = DAY + timedelta(minutes=30, seconds=137 * (u * 20 + j))
            rows.append(event(f"b{u}-{j}", f"u{u}", ITEMS[(u * 7 + j) % 30], TYPES[j % 5],
                              iso(t)))
    return rows


BASE = len(base_rows())


def land_catalog(cfg) -> None:
    folder = lake.landing_catalog(cfg, DS)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "catalog.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["item_id", "title", "category", "brand", "price", "available"])
        for i in ITEMS:
            w.writerow([i, f"Thing {i}", "Home > Kitchen", "Acme", "10.00", "true"])


def land_rows(cfg, rows: list[dict], fmt: str = "csv", name: str = "events") -> None:
    import pandas as pd

    folder = lake.landing_events(cfg, DS)
    folder.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows, dtype=str)
    if fmt == "csv":
        df.to_csv(folder / f"{name}.csv", index=False)
    elif fmt == "jsonl":
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        df.to_parquet(folder / f"{name}.parquet", index=False)


def land_text(cfg, name: str, text: str | bytes) -> None:
    folder = lake.landing_events(cfg, DS)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


def clean_and_validate(spark, cfg) -> CleanCounts:
    from expectations.validate import validate
    from jobs.clean import run

    counts = run(spark, cfg, DS)
    assert counts.rows_in == counts.clean + counts.duplicates + counts.quarantined
    for stage in ("raw", "clean"):
        assert validate(cfg, stage, DS, spark=spark).success
    return counts


def expect(counts: CleanCounts, clean: int, duplicates: dict | None = None,
           quarantined: dict | None = None) -> None:
    assert counts.quarantined_by_reason == (quarantined or {})
    assert counts.duplicates_by_kind == (duplicates or {})
    assert counts.clean == clean
    assert counts.rows_in == clean + sum((duplicates or {}).values()) + sum(
        (quarantined or {}).values())


@pytest.fixture
def home(cfg, monkeypatch):
    monkeypatch.setenv("NIGHTSHELF_PII_KEY", "catalogue-test-key")
    land_catalog(cfg)
    return cfg


# -- row level: quarantined with a reason, counted, and the night goes on ------------------

def test_a_clean_day_is_all_clean(spark, home):
    land_rows(home, base_rows())
    expect(clean_and_validate(spark, home), clean=BASE)


def test_malformed_csv_rows_and_unparsable_numbers(spark, home):
    land_rows(home, base_rows())
    good = ",".join(event("ok1", "u1", "I001").values())
    land_text(home, "late.csv", ",".join(COLUMNS) + "\n" + "\n".join([
        good,
        "m1,u1,I001,view",                                     # too few fields
        good.replace("ok1", "m2") + ",surplus",                 # too many fields
        ",".join(event("m3", price="12;50").values()),          # price is not a number
        ",".join(event("m4", quantity="two").values()),         # quantity is not a number
    ]) + "\n")
    expect(clean_and_validate(spark, home), clean=BASE + 1,
           quarantined={"malformed_row": 2, "bad_price": 1, "bad_quantity": 1})


def test_a_broken_json_line(spark, home):
    land_rows(home, base_rows(), fmt="jsonl")
    land_text(home, "late.jsonl", json.dumps(event("j1", "u3", "I003")) + "\n"
              + '{"event_id": "j2", "user_id": "u3", "item_id": \n')
    expect(clean_and_validate(spark, home), clean=BASE + 1, quarantined={"malformed_row": 1})


def test_nulls_in_required_fields(spark, home):
    bad = [event("n1", user=""), event("n2", item=""), event("n3", etype=""),
           {**event("n4"), "event_time": ""}]
    land_rows(home, base_rows() + bad, fmt="parquet")
    expect(clean_and_validate(spark, home), clean=BASE,
           quarantined={"missing_user_id": 1, "missing_item_id": 1, "missing_event_type": 1,
                        "missing_event_time": 1})


def test_unknown_event_types_and_accepted_synonyms(spark, home):
    bad = [event("t1", etype="hover"), event("t2", etype="click")]
    fine = [event("t3", "u5", "I005", etype=" ORDER "), event("t4", "u6", "I006", "Page_View")]
    land_rows(home, base_rows() + bad + fine)
    expect(clean_and_validate(spark, home), clean=BASE + 2,
           quarantined={"unknown_event_type": 2})


def test_timestamps_in_every_accepted_format_and_in_bad_ones(spark, home):
    t = DAY + timedelta(hours=21)
    accepted = [iso(t), "2026-11-22T23:00:00+02:00", "2026-11-22 21:05:00+0000",
                str(int((t + timedelta(minutes=10)).timestamp())),
                str(int((t + timedelta(minutes=20)).timestamp() * 1000)),
                "2026-11-22T21:30:00.123Z"]
    bad = ["yesterday", "2026-11-22T21:00:00", "22/11/2026 21:00", "1e12"]
    rows = [event(f"ok{i}", f"u{i}", ITEMS[i], when=w) for i, w in enumerate(accepted)]
    rows += [event(f"bad{i}", when=w) for i, w in enumerate(bad)]
    land_rows(home, base_rows() + rows)
    expect(clean_and_validate(spark, home), clean=BASE + len(accepted),
           quarantined={"bad_event_time": len(bad)})


def test_events_dated_in_the_future_or_long_before_the_partition(spark, home):
    rows = [event("f1", when=iso(DAY + timedelta(days=1, minutes=10))),   # clock skew: kept
            event("f2", "u2", when=iso(DAY + timedelta(days=1, hours=2))),  # the future
            event("f3", "u3", when=iso(DAY - timedelta(hours=30))),      # late, tolerated
            event("f4", "u4", when=iso(DAY - timedelta(days=5)))]        # too old
    land_rows(home, base_rows() + rows)
    expect(clean_and_validate(spark, home), clean=BASE + 2,
           quarantined={"event_time_after_partition": 1, "event_time_before_partition": 1})


def test_exact_duplicates_and_double_fired_events(spark, home):
    t = DAY + timedelta(hours=22)
    original = event("d1", "u7", "I007", "add_to_cart", iso(t))
    rows = [original, dict(original), dict(original),                  # the same event thrice
            event("d2", "u7", "I007", "add_to_cart", iso(t + timedelta(seconds=2))),  # double
            event("d3", "u7", "I007", "add_to_cart", iso(t + timedelta(seconds=60)))]  # again
    land_rows(home, base_rows() + rows, fmt="jsonl")
    expect(clean_and_validate(spark, home), clean=BASE + 2,
           duplicates={"exact": 2, "double_fire": 1})


def test_negative_or_absurd_prices_and_quantities(spark, home):
    rows = [event("p1", price="-3.00"), event("p2", price="1000000000"),
            event("p3", quantity="0"), event("p4", quantity="5000"),
            event("p5", "u8", "I008", price="99999", quantity="1000")]  # at the limits: kept
    land_rows(home, base_rows() + rows)
    expect(clean_and_validate(spark, home), clean=BASE + 1,
           quarantined={"price_out_of_range": 2, "quantity_out_of_range": 2})


def test_items_not_in_the_catalog(spark, home):
    rows = [event("x1", item="NOPE-1"), event("x2", "u2", "NOPE-2", "purchase")]
    land_rows(home, base_rows() + rows)
    expect(clean_and_validate(spark, home), clean=BASE, quarantined={"unknown_item": 2})


def test_a_bot_like_user_with_thousands_of_events(spark, home):
    t = DAY + timedelta(hours=1)
    bot = [event(f"bot{i}", "crawler", ITEMS[i % 30], "view",
                 iso(t + timedelta(seconds=8 * i))) for i in range(2500)]
    land_rows(home, base_rows() + bot, fmt="parquet")
    counts = clean_and_validate(spark, home)
    expect(counts, clean=BASE, quarantined={"bot_user": 2500})


def test_an_extra_column_is_reported_and_does_not_change_the_counts(spark, home):
    land_rows(home, [{**r, "coupon": "X"} for r in base_rows()])
    counts = clean_and_validate(spark, home)
    expect(counts, clean=BASE)
    assert counts.extra_columns == ["coupon"]


def test_several_files_of_different_formats_in_one_day(spark, home):
    rows = base_rows()
    land_rows(home, rows[:80], "csv", "a")
    land_rows(home, rows[80:150], "jsonl", "b")
    land_rows(home, rows[150:], "parquet", "c")
    expect(clean_and_validate(spark, home), clean=BASE)


# -- file and schema level: the night stops, and the error says what to do -----------------

def _fails(spark, cfg, *fragments: str) -> None:
    from jobs.clean import run
    from nightshelf.landing import InputError

    with pytest.raises(InputError) as err:
        run(spark, cfg, DS)
    for f in fragments:
        assert f in str(err.value), (f, str(err.value))


def _fails_on_columns(spark, cfg, *fragments: str) -> None:
    from jobs.clean import run

    with pytest.raises(ValueError) as err:
        run(spark, cfg, DS)
    for f in fragments:
        assert f in str(err.value), (f, str(err.value))


def test_an_empty_day(spark, home):
    land_text(home, "events.csv", ",".join(COLUMNS) + "\n")
    _fails(spark, home, "ds=2026-11-22", "events.csv", "hold no rows", "re-export")


def test_an_empty_file(spark, home):
    land_text(home, "events.csv", "")
    _fails(spark, home, "events.csv", "empty", "re-export")


def test_a_missing_day(spark, home):
    _fails(spark, home, "ds=2026-11-22", "no landed folder", "land the day")


def test_a_parquet_file_named_csv(spark, home, tmp_path):
    import pandas as pd

    pd.DataFrame(base_rows()).to_parquet(tmp_path / "x.parquet")
    land_text(home, "events.csv", (tmp_path / "x.parquet").read_bytes())
    _fails(spark, home, "events.csv", "Parquet", ".parquet")


def test_a_csv_file_named_parquet(spark, home):
    land_text(home, "events.parquet", ",".join(COLUMNS) + "\n")
    _fails(spark, home, "events.parquet", "does not start with PAR1", ".csv")


def test_a_csv_file_named_jsonl(spark, home):
    land_text(home, "events.jsonl", ",".join(COLUMNS) + "\nb1,u1,I001\n")
    _fails(spark, home, "events.jsonl", "not a JSON object", "re-export")


def test_a_renamed_column(spark, home):
    land_rows(home, [{("customer" if k == "user_id" else k): v for k, v in r.items()}
                     for r in base_rows()])
    _fails_on_columns(spark, home, "user_id", "missing", "customer", "column_map")


def test_a_missing_column(spark, home):
    land_rows(home, [{k: v for k, v in r.items() if k != "event_time"} for r in base_rows()])
    _fails_on_columns(spark, home, "event_time", "missing", "column_map")


# -- bring your own export: a column mapping in config, no code change ---------------------

BYO_CONFIG = """
events:
  column_map: {customer: user_id, sku: item_id, ts: event_time, order_ref: event_id}
  default_event_type: purchase
"""


def test_a_shops_own_export_lands_through_the_column_map(spark, cfg, tmp_path, monkeypatch):
    import dataclasses

    from nightshelf.config import load_config

    path = tmp_path / "shop.yaml"
    path.write_text(BYO_CONFIG)
    own = load_config(path, environ={"NIGHTSHELF_HOME": str(cfg.home)})
    assert dataclasses.replace(own, events=cfg.events) == cfg  # only the mapping differs
    monkeypatch.setenv("NIGHTSHELF_PII_KEY", "byo-test-key")
    land_catalog(own)
    t0 = int((DAY + timedelta(hours=9)).timestamp())
    rows = [{"order_ref": f"o{k}", "customer": f"c{k % 7}", "sku": ITEMS[k % 30],
             "ts": str(t0 + 600 * k)} for k in range(60)]
    rows.append({"order_ref": "o-bad", "customer": "c1", "sku": ITEMS[1], "ts": "soon"})
    land_rows(own, rows)
    counts = clean_and_validate(spark, own)
    expect(counts, clean=60, quarantined={"bad_event_time": 1})
    clean = spark.read.parquet(str(lake.clean_events(own, DS)))
    assert {r.event_type for r in clean.select("event_type").distinct().collect()} == {
        "purchase"}
    first = clean.filter("event_id = 'o0'").first()
    assert first.user_id == "c0" and first.item_id == ITEMS[0]
    assert first.event_time == datetime(2026, 11, 22, 9, 0)
