"""Yesterday's published lists scored against what users did today (jobs/feedback.py)."""

import json
import math

import pytest

pytestmark = pytest.mark.spark

LISTS = [  # user, rank, item, reason, model version
    ("u1", 1, "A", 'similar to "Lamp" you viewed', "5"),
    ("u1", 2, "B", "popular in Home", "5"),
    ("u1", 3, "C", "you viewed it recently", "5"),
    ("u2", 1, "A", "popular in Home", "5"),
    ("u2", 2, "D", "popular in Home", "5"),
    ("u2", 3, "E", "more from Home", "5"),
    ("u3", 1, "F", "popular in Home", "popularity"),
    ("u3", 2, "G", "popular in Home", "popularity"),
    ("u3", 3, "H", "popular in Home", "popularity"),
]
EVENTS = [  # user, item, event type: u1 touched B and Z, u2 bought Q, u3 did nothing, u4 has
    ("u1", "B", "view"), ("u1", "B", "purchase"), ("u1", "Z", "view"),  # no list
    ("u2", "Q", "purchase"), ("u4", "A", "purchase"),
]


def _frames(spark):
    lists = spark.createDataFrame(LISTS, "user_id string, rank int, item_id string, "
                                         "reason string, model_version string")
    events = spark.createDataFrame(EVENTS, "user_id string, item_id string, event_type string")
    return lists, events


def test_the_figures_match_a_hand_worked_night(spark):
    from jobs.feedback import served_feedback

    got = served_feedback(*_frames(spark), n=3)
    # u1: B hit at rank 2 of 2 relevant items; u2: no hit; u3 inactive; u4 has no list
    ndcg_u1 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert got["users_listed"] == 3 and got["users_active"] == 2
    assert got["overall"]["users"] == 2
    assert got["overall"]["hr"] == pytest.approx(0.5)
    assert got["overall"]["ndcg"] == pytest.approx(ndcg_u1 / 2)
    assert got["purchases"] == 3 and got["purchases_recommended"] == 1
    assert got["purchase_share"] == pytest.approx(1 / 3)
    assert set(got["by_model_version"]) == {"5"}  # the popularity lists' user was inactive
    assert got["by_model_version"]["5"]["ndcg"] == pytest.approx(ndcg_u1 / 2)
    assert got["by_reason"] == {
        "category": {"shown": 1, "hits": 0, "hit_rate": 0.0},
        "own_history": {"shown": 1, "hits": 0, "hit_rate": 0.0},
        "popular": {"shown": 3, "hits": 1, "hit_rate": pytest.approx(1 / 3)},
        "similar": {"shown": 1, "hits": 0, "hit_rate": 0.0},
    }


def test_a_night_scores_the_lists_of_the_night_before(spark, cfg):
    from jobs import feedback
    from nightshelf import lake
    from nightshelf.records import FeedbackRecord

    first = feedback.run(spark, cfg, "2026-11-22")
    assert first.served is None and first.skipped == "no lists were published for 2026-11-21"
    lists, events = _frames(spark)
    served = lake.recommendations(cfg, "2026-11-22")
    lists.write.parquet(str(served))
    (served / lake.MANIFEST).write_text(json.dumps({"top_n": 3}))
    events.write.parquet(str(lake.clean_events(cfg, "2026-11-23")))
    record = feedback.run(spark, cfg, "2026-11-23")
    assert FeedbackRecord.read(cfg, "2026-11-23") == record
    assert record.served_ds == "2026-11-22" and record.top_n == 3
    metrics = feedback.mlflow_metrics(record)
    assert metrics["served.hr_at_3"] == pytest.approx(0.5)
    assert metrics["served.purchase_share"] == pytest.approx(1 / 3)
    assert metrics["served.popular.hit_rate"] == pytest.approx(1 / 3)
