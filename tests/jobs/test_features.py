"""The features job's transforms on hand-written rows, with real local Spark."""

from datetime import datetime

import pytest

from jobs.features import item_features, user_features, user_sequences
from nightshelf import lake

pytestmark = pytest.mark.spark

DS = "2026-11-22"
CUT = lake.cutoff(DS)  # 2026-11-23 00:00 UTC
WEIGHTS = {"view": 1.0, "favorite": 2.0, "add_to_cart": 3.0, "purchase": 5.0}


@pytest.fixture
def events(spark):
    rows = [
        ("a", "u1", "i2", "view", datetime(2026, 11, 15, 9, 0), "s0"),
        ("b", "u1", "i1", "view", datetime(2026, 11, 21, 10, 0), "s1"),
        ("c", "u1", "i1", "add_to_cart", datetime(2026, 11, 21, 10, 1), "s1"),
        ("d", "u1", "i1", "purchase", datetime(2026, 11, 21, 10, 5), "s1"),
        ("e", "u1", "i3", "view", datetime(2026, 11, 23, 1, 0), "s9"),  # after the cutoff
        ("f", "u2", "i2", "view", datetime(2026, 11, 22, 20, 0), "s2"),
    ]
    df = spark.createDataFrame(rows, "event_id string, user_id string, item_id string, "
                                     "event_type string, event_time timestamp, "
                                     "session_id string")
    return df.selectExpr("*", "case event_type when 'view' then 1.0 when 'add_to_cart' then 3.0 "
                              "else 5.0 end as weight")


@pytest.fixture
def catalog(spark):
    return spark.createDataFrame(
        [("i1", "Soap", "Beauty", "B", 3.0, True, True, datetime(2026, 11, 1).date(), None),
         ("i2", "Mug", "Home", "C", 9.0, True, False, datetime(2026, 11, 20).date(), None),
         ("i3", "Cap", "Sports", "D", 5.0, False, False, None, None)],
        "item_id string, title string, category string, brand string, price double, "
        "available boolean, repurchasable boolean, first_seen date, description string")


def test_user_features_count_windows_and_ignore_events_after_cutoff(events, catalog):
    rows = {r.user_id: r for r in
            user_features(events, catalog, cutoff=CUT, windows=[1, 7, 30]).collect()}
    u1 = rows["u1"]
    assert (u1.n_view_1d, u1.n_view_7d, u1.n_view_30d, u1.n_view_all) == (0, 1, 2, 2)
    assert (u1.n_purchase_7d, u1.n_add_to_cart_all) == (1, 1)
    assert u1.last_event_time == datetime(2026, 11, 21, 10, 5)
    assert u1.top_category == "Beauty"  # 1 + 3 + 5 on i1 beats 1 on i2
    assert rows["u2"].n_view_1d == 1
    assert abs(rows["u2"].recency_days - 4 / 24) < 1e-9


def test_item_features_popularity_conversion_and_age(events, catalog):
    rows = {r.item_id: r for r in
            item_features(events, catalog, cutoff=CUT, windows=[1, 7, 30]).collect()}
    assert rows["i1"].pop_purchase_30d == 1 and rows["i1"].conversion_30d == 1.0
    assert rows["i3"].pop_view_all == 0  # its only view is after the cutoff
    assert rows["i2"].age_days == 3 and rows["i3"].age_days is None
    assert rows["i2"].n_users == 2


def test_sequences_merge_runs_keep_order_and_recent_purchases(events):
    rows = {r.user_id: r for r in
            user_sequences(events, cutoff=CUT, length=50, weights=WEIGHTS,
                           exclusion_days=30).collect()}
    u1 = rows["u1"]
    assert u1["items"] == ["i2", "i1"]
    assert u1["event_types"] == ["view", "purchase"]  # the run's strongest type
    assert u1["event_times"] == [datetime(2026, 11, 15, 9, 0), datetime(2026, 11, 21, 10, 0)]
    assert u1["recent_purchases"] == ["i1"]
    assert rows["u2"]["recent_purchases"] == []


def test_sequences_keep_the_most_recent_steps(events):
    rows = {r.user_id: r for r in
            user_sequences(events, cutoff=CUT, length=1, weights=WEIGHTS,
                           exclusion_days=30).collect()}
    assert rows["u1"]["items"] == ["i1"] and rows["u2"]["items"] == ["i2"]
