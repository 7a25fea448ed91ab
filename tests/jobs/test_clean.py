"""The clean job's transforms on hand-written rows, with real local Spark."""

import hashlib
import hmac
from datetime import datetime

import pytest

from jobs.catalog import clean_catalog
from jobs.clean import clean_events, hmac_sha256
from nightshelf.landing import require_columns

pytestmark = pytest.mark.spark

DS = "2026-11-22"
KEY = b"test-key"
COLS = ["event_id", "user_id", "item_id", "event_type", "event_time", "session_id", "price",
        "quantity", "email", "ip", "_source_file"]


def raw_frame(spark, rows):
    return spark.createDataFrame([tuple(r) + ("day.csv",) for r in rows],
                                 "event_id string, user_id string, item_id string, "
                                 "event_type string, event_time string, session_id string, "
                                 "price string, quantity string, email string, ip string, "
                                 "_source_file string")


ROWS = [
    # event_id, user, item, type, time, session, price, quantity, email, ip
    ("e1", "u1", "i1", "view", "2026-11-22T10:00:00Z", "s1", "9.99", "1", "a@x.com", "1.2.3.4"),
    ("e1", "u1", "i1", "view", "2026-11-22T10:00:00Z", "s1", "9.99", "1", "a@x.com", "1.2.3.4"),
    ("e2", "u1", "i1", "VIEW", "1795341602000", "s1", "9.99", "1", "a@x.com", "1.2.3.4"),
    ("e3", "u1", "i2", "order", "1795345200", "s1", "12.50", "2", "a@x.com", "1.2.3.4"),
    ("e4", None, "i2", "view", "2026-11-22T11:00:00Z", "s2", None, None, "b@x.com", "5.6.7.8"),
    ("e5", "u2", "i2", "hover", "2026-11-22T11:00:00Z", "s2", None, None, "b@x.com", "5.6.7.8"),
    ("e6", "u2", "i2", "view", "yesterday", "s2", None, None, "b@x.com", "5.6.7.8"),
    ("e7", "u2", "i2", "view", "2026-11-10T11:00:00Z", "s2", None, None, "b@x.com", "5.6.7.8"),
    ("e8", "u2", "i3", "view", "2026-11-22T12:00:00Z", "s2", "abc", None, "b@x.com", "5.6.7.8"),
    ("e9", "u2", "i3", "view", "2026-11-22T12:00:00", "s2", None, None, "b@x.com", "5.6.7.8"),
    ("e10", "u3", "i3", "cart", "2026-11-22T14:30:00+02:00", "s3", "", "", "c@x.com", "9.9.9.9"),
]


@pytest.fixture
def cleaned(spark, cfg):
    raw = raw_frame(spark, ROWS)
    return clean_events(raw, ds=DS, events=cfg.events, pii_key=KEY)


def test_every_row_lands_in_exactly_one_place(cleaned):
    clean, quarantine, dups = cleaned
    assert clean.count() + quarantine.count() + dups.count() == len(ROWS)
    assert sorted(r.event_id for r in clean.collect()) == ["e1", "e10", "e3"]


def test_duplicates_exact_and_double_fired(cleaned):
    _, _, dups = cleaned
    assert sorted((r.event_id, r.dup_kind) for r in dups.collect()) == [
        ("e1", "exact"), ("e2", "double_fire")]


def test_quarantine_reasons(cleaned):
    _, quarantine, _ = cleaned
    reasons = sorted(r.reject_reason for r in quarantine.collect())
    assert reasons == sorted(["missing_user_id", "unknown_event_type", "bad_event_time",
                              "event_time_before_partition", "bad_price", "bad_event_time"])


def test_normalised_types_times_and_weights(cleaned):
    clean, _, _ = cleaned
    rows = {r.event_id: r for r in clean.collect()}
    assert rows["e3"].event_type == "purchase" and rows["e3"].weight == 5.0
    assert rows["e3"].price == 12.5 and rows["e3"].quantity == 2
    assert rows["e3"].event_time == datetime(2026, 11, 22, 11, 0)
    assert rows["e10"].event_type == "add_to_cart"
    assert rows["e10"].event_time == datetime(2026, 11, 22, 12, 30)  # +02:00 -> UTC
    assert rows["e10"].price is None


def test_pii_is_keyed_hashed_or_dropped_everywhere(cleaned):
    clean, quarantine, _ = cleaned
    assert "email" not in clean.columns and "ip" not in clean.columns
    row = clean.filter("event_id = 'e1'").first()
    assert row.email_hash == hmac.new(KEY, b"a@x.com", hashlib.sha256).hexdigest()
    raw_text = " ".join(r.raw for r in quarantine.collect())
    assert "b@x.com" not in raw_text and "5.6.7.8" not in raw_text


def test_hmac_matches_python_for_long_keys(spark):
    key = b"k" * 100  # longer than the block: hashed first, as RFC 2104 says
    df = spark.createDataFrame([("hello",)], "v string")
    got = df.select(hmac_sha256(df.v, key).alias("h")).first().h
    assert got == hmac.new(key, b"hello", hashlib.sha256).hexdigest()


def test_hashing_without_a_key_fails_clearly(spark, cfg):
    with pytest.raises(ValueError, match="NIGHTSHELF_PII_KEY"):
        clean_events(raw_frame(spark, ROWS[:1]), ds=DS, events=cfg.events, pii_key=None)


def test_missing_required_column_names_it_and_the_fix(spark):
    df = spark.createDataFrame([("u", "i")], "user string, item_id string")
    with pytest.raises(ValueError, match=r"column\(s\) user_id, event_type, event_time missing "
                                         r"\(got: user, item_id\).*column_map"):
        require_columns(df, ("user_id", "item_id", "event_type", "event_time"), "raw events")


def test_catalog_is_typed_deduplicated_and_rejects_counted(spark):
    raw = spark.createDataFrame(
        [("i1", "Soap", "Beauty > Skincare", "B", "3.5", "true", "yes"),
         ("i1", "Soap", "Beauty > Skincare", "B", "3.5", "false", "yes"),
         ("i2", "Mug", "Home > Kitchen", "C", "n/a", "true", None),
         ("i3", "Tea", "Grocery > Tea", "D", "2", "true", None),
         ("i4", "Pan", "Home > Kitchen", "C", "20", "true", "no"),
         (None, "Ghost", "Home", "C", "1", "true", None)],
        "item_id string, title string, category string, brand string, price string, "
        "available string, repurchasable string")
    good, rejects = clean_catalog(raw, ds=DS)
    rows = good.collect()
    # a catalog that does not say whether an item is rebought leaves it to the data (null)
    assert sorted((r.item_id, r.price, r.available, r.repurchasable) for r in rows) == [
        ("i1", 3.5, True, True), ("i3", 2.0, True, None), ("i4", 20.0, True, False)]
    assert sorted(r.reject_reason for r in rejects.collect()) == ["bad_price", "missing_item_id"]
