"""Every suite passes on a good frame and fails, naming the expectation, on a bad one."""

from datetime import datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from expectations import frames
from expectations import suites as su
from expectations.validate import _context, run_suite
from nightshelf import lake

pytestmark = [pytest.mark.spark, pytest.mark.slow]

DS = "2026-11-22"


@pytest.fixture
def ctx(cfg):
    return _context(cfg)


def failed(result) -> set[tuple[str, str]]:
    return {(f["expectation"], f["kwargs"].get("column", str(f["kwargs"].get("column_list"))))
            for f in result.failed}


def test_raw_suite(spark, cfg, ctx):
    cols = "user_id string, item_id string, event_type string, event_time string, " \
           "_event_type_norm string"
    good = spark.createDataFrame([("u", "i", "view", "1795341600", "view")] * 20, cols)
    assert run_suite(ctx, "raw_events", su.raw_suite(cfg), good).success
    bad = spark.createDataFrame([("u", "i", "view", "1795341600", "view")] * 10
                                + [(None, "i", "hover", "x", "hover")] * 10, cols)
    res = run_suite(ctx, "raw_events", su.raw_suite(cfg), bad)
    assert not res.success
    assert ("expect_column_values_to_not_be_null", "user_id") in failed(res)
    assert ("expect_column_values_to_be_in_set", "_event_type_norm") in failed(res)


def test_clean_suite_and_counts(spark, cfg, ctx):
    t = datetime(2026, 11, 22, 12)
    cols = "event_id string, user_id string, item_id string, event_type string, " \
           "event_time timestamp, price double, weight double"
    good = spark.createDataFrame([("e1", "u", "i", "view", t, 1.0, 1.0),
                                  ("e2", "u", "i", "purchase", t, 1.0, 5.0)], cols)
    good = good.withColumn("_epoch_s", good.event_time.cast("double"))
    assert run_suite(ctx, "clean_events", su.clean_suite(cfg, DS), good).success
    bad = spark.createDataFrame([("e1", "u", "i", "view", t, -1.0, 1.0),
                                 ("e1", "u", "i", "click", datetime(2026, 12, 1), 1.0, 1.0)], cols)
    bad = bad.withColumn("_epoch_s", bad.event_time.cast("double"))
    res = run_suite(ctx, "clean_events", su.clean_suite(cfg, DS), bad)
    assert {("expect_column_values_to_be_unique", "event_id"),
            ("expect_column_values_to_be_in_set", "event_type"),
            ("expect_column_values_to_be_between", "price"),
            ("expect_column_values_to_be_between", "_epoch_s")} <= failed(res)

    ok = spark.createDataFrame([{"rows_in": 100, "accounted_for": 100, "quarantine_rate": 0.01,
                                 "duplicate_rate": 0.02, "no_pii_columns": True}])
    assert run_suite(ctx, "clean_counts", su.clean_counts_suite(cfg), ok).success
    lost = spark.createDataFrame([{"rows_in": 100, "accounted_for": 99, "quarantine_rate": 0.2,
                                   "duplicate_rate": 0.02, "no_pii_columns": False}])
    res = run_suite(ctx, "clean_counts", su.clean_counts_suite(cfg), lost)
    assert {e for e, _ in failed(res)} >= {"expect_column_pair_values_to_be_equal",
                                           "expect_column_values_to_be_between",
                                           "expect_column_values_to_be_in_set"}


def test_feature_suites(spark, cfg, ctx):
    users_cols = "user_id string, recency_days double, n_view_all int, n_view_30d int"
    good = spark.createDataFrame([("u1", 0.5, 3, 2), ("u2", 2.0, 1, 1)], users_cols)
    assert run_suite(ctx, "user_features", su.user_features_suite(cfg), good).success
    bad = spark.createDataFrame([("u1", -1.0, 1, 2), ("u1", 2.0, 1, 1)], users_cols)
    res = run_suite(ctx, "user_features", su.user_features_suite(cfg), bad)
    assert {("expect_column_values_to_be_unique", "user_id"),
            ("expect_column_values_to_be_between", "recency_days")} <= failed(res)

    items_cols = "item_id string, price double, category string, conversion_30d double, " \
                 "pop_view_30d int"
    good = spark.createDataFrame([("i1", 2.0, "A", 0.1, 3)], items_cols)
    assert run_suite(ctx, "item_features", su.item_features_suite(cfg), good).success
    bad = spark.createDataFrame([("i1", -2.0, None, 0.1, 3)], items_cols)
    res = run_suite(ctx, "item_features", su.item_features_suite(cfg), bad)
    assert {("expect_column_values_to_be_between", "price"),
            ("expect_column_values_to_not_be_null", "category")} <= failed(res)


def _write_sequences(cfg, rows):
    path = lake.features(cfg, "sequences", DS)
    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({
        "user_id": [r[0] for r in rows], "items": [r[1] for r in rows],
        "event_types": [r[2] for r in rows],
        "event_times": pa.array([r[3] for r in rows], pa.list_(pa.timestamp("us"))),
        "recent_purchases": [r[4] for r in rows]}), path / "part-0.parquet")


def test_sequences_suite(spark, cfg, ctx):
    t1, t2 = datetime(2026, 11, 20), datetime(2026, 11, 21)
    _write_sequences(cfg, [("u1", ["a", "b"], ["view", "view"], [t1, t2], [])])
    good = frames.sequences_frame(spark, cfg, DS)
    assert run_suite(ctx, "user_sequences", su.sequences_suite(cfg), good).success
    _write_sequences(cfg, [("u1", ["a", "b"], ["view"], [t2, t1], []),
                           ("u2", ["a"], ["view"], [datetime(2026, 11, 23, 5)], [])])
    res = run_suite(ctx, "user_sequences", su.sequences_suite(cfg),
                    frames.sequences_frame(spark, cfg, DS))
    assert {c for _, c in failed(res)} == {"_times_sorted", "_before_cutoff", "_aligned"}


def test_recommendations_suite_checks_every_invariant(spark, cfg, ctx, tmp_path):
    cat = lake.clean_catalog(cfg, DS)
    cat.mkdir(parents=True)
    # the catalog says c is rebought and a is not; it is silent on e, which the night learned
    # is rebought (the context job's flag), and on f, which it learned is not
    pq.write_table(pa.table({"item_id": ["a", "b", "c", "d", "e", "f"],
                             "available": [True, True, True, False, True, True],
                             "repurchasable": pa.array([False, False, True, False, None, None],
                                                       pa.bool_())}), cat / "p.parquet")
    learned = lake.context(cfg, DS, "cutoff", lake.CONTEXT_ITEMS)
    learned.mkdir(parents=True)
    pq.write_table(pa.table({"item_id": ["a", "e", "f"],
                             "learned_repurchasable": [True, True, False]}),
                   learned / "p.parquet")
    t = datetime(2026, 11, 20)
    _write_sequences(cfg, [("u1", ["a"], ["purchase"], [t], ["a", "c", "e", "f"]),
                           ("u2", ["b"], ["view"], [t], [])])

    def recs(rows):
        """Write (user, rank, item, score) rows as a staged list and build its frames."""
        path = tmp_path / f"recs-{len(list(tmp_path.iterdir()))}"
        path.mkdir()
        users, ranks, items, scores = (list(c) for c in zip(*rows))
        n = len(rows)
        pq.write_table(pa.table({"user_id": users, "rank": ranks, "item_id": items,
                                 "score": scores, "reason": ["r"] * n,
                                 "model_version": ["1"] * n, "run_id": ["x"] * n}),
                       path / "p.parquet")
        return frames.recommendation_frames(spark, cfg, DS, str(path))

    good_recs, good_users = recs([("u1", 1, "b", 0.9), ("u1", 2, "c", 0.5),
                                  ("u1", 3, "e", 0.4), ("u2", 1, "a", 0.7)])
    assert run_suite(ctx, "recommendations", su.recommendations_suite(cfg), good_recs).success
    assert run_suite(ctx, "recommendations_users", su.eligible_users_suite(cfg),
                     good_users).success

    bad_recs, bad_users = recs([("u1", 1, "a", 0.5), ("u1", 3, "d", 0.9), ("u1", 4, "z", 0.1)])
    res = run_suite(ctx, "recommendations", su.recommendations_suite(cfg), bad_recs)
    assert {c for _, c in failed(res)} == {
        "_ranks_contiguous", "_score_sorted", "_item_available", "_not_recently_bought",
        "_item_in_catalog"}
    res = run_suite(ctx, "recommendations_users", su.eligible_users_suite(cfg), bad_users)
    assert failed(res) == {("expect_column_values_to_be_in_set", "_has_list")}
    # learned not rebought, bought inside the window: never re-recommended
    res = run_suite(ctx, "recommendations", su.recommendations_suite(cfg),
                    recs([("u1", 1, "f", 0.5), ("u2", 1, "a", 0.7)])[0])
    assert {c for _, c in failed(res)} == {"_not_recently_bought"}


def test_coverage_suite_refuses_lists_that_collapse(spark, cfg, ctx, tmp_path):
    cat = lake.clean_catalog(cfg, DS)
    cat.mkdir(parents=True)
    items = [f"i{k}" for k in range(100)]
    pq.write_table(pa.table({"item_id": items, "available": [True] * 100}), cat / "p.parquet")

    def published(lists):
        path = tmp_path / f"recs-{len(list(tmp_path.iterdir()))}"
        path.mkdir()
        rows = [(u, r + 1, item) for u, lst in lists.items() for r, item in enumerate(lst)]
        users, ranks, its = (list(c) for c in zip(*rows))
        pq.write_table(pa.table({"user_id": users, "rank": ranks, "item_id": its}),
                       path / "p.parquet")
        return frames.coverage_frame(spark, cfg, DS, str(path), top_n=2)

    # 50 users x 2 items could hold all 100 items; one item for everyone is 1%, below 2%
    same = published({f"u{k}": ["i0"] for k in range(50)})
    res = run_suite(ctx, "recommendations_coverage", su.coverage_suite(cfg), same)
    assert failed(res) == {("expect_column_values_to_be_between", "possible_coverage")}
    varied = published({f"u{k}": [f"i{k}", f"i{k + 50}"] for k in range(50)})
    assert run_suite(ctx, "recommendations_coverage", su.coverage_suite(cfg), varied).success
