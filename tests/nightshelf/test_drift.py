"""Night-over-night drift checks: PSI and list overlap by hand, thresholds that warn or fail."""

import numpy as np
import pytest

from nightshelf import drift, lake
from nightshelf.records import CleanCounts, DriftRecord, GateRecord, Serving

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def test_psi_is_zero_for_the_same_sample_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=5000)
    assert drift.psi(a, a) == pytest.approx(0.0, abs=1e-9)
    assert drift.psi(a, rng.normal(size=5000)) < 0.02
    assert drift.psi(a, rng.normal(loc=1.0, size=5000)) > 0.5


def test_psi_by_hand_on_two_bins():
    expected = np.array([0, 0, 1, 1], float)       # one edge at 0.5 -> halves
    actual = np.array([0, 1, 1, 1], float)         # a quarter / three quarters
    want = (0.25 - 0.5) * np.log(0.25 / 0.5) + (0.75 - 0.5) * np.log(0.75 / 0.5)
    assert drift.psi(expected, actual, bins=2) == pytest.approx(want)


def test_list_overlap_is_the_mean_jaccard_of_common_users():
    today = {"u1": {"a", "b"}, "u2": {"c"}, "u3": {"x"}}
    before = {"u1": {"b", "c"}, "u2": {"c"}}
    assert drift.list_overlap(today, before) == pytest.approx((1 / 3 + 1) / 2)


def _night(cfg, ds, rows_in, quarantined, lists, published):
    CleanCounts(ds=ds, rows_in=rows_in, clean=rows_in - quarantined, duplicates=0,
                quarantined=quarantined, duplicates_by_kind={},
                quarantined_by_reason={"bad_timestamp": quarantined}).write(cfg)
    folder = lake.recommendations(cfg, ds) if published else lake.staging_recommendations(cfg, ds)
    folder.mkdir(parents=True)
    users = [u for u, items in lists.items() for _ in items]
    items = [i for items in lists.values() for i in items]
    pq.write_table(pa.table({"user_id": users, "item_id": items,
                             "score": [float(k) for k in range(len(items))]}),
                   folder / "part-0.parquet")
    GateRecord(ds=ds, model_name="m", challenger_version="1", promoted=True, reason="test",
               metric="ndcg@10", champion_version=None, champion_metrics=None,
               serving=Serving("model", "1", "run-1")).write(cfg)


def test_a_collapse_in_volume_fails_the_night_and_says_why(cfg):
    _night(cfg, "2026-11-21", 1000, 10, {"u1": ["a", "b"], "u2": ["c"]}, published=True)
    _night(cfg, "2026-11-22", 50, 2, {"u1": ["a", "b"], "u2": ["d"]}, published=False)
    with pytest.raises(drift.DriftFailed, match="event_volume_change"):
        drift.run(cfg, "2026-11-22")
    report = DriftRecord.read(cfg, "2026-11-22")
    status = {c.check: c.status for c in report.checks}
    assert status["event_volume_change"] == "fail"
    assert status["quarantine_rate_change"] == "warn"     # 0.01 -> 0.04: not yet a fail
    assert status["psi.users.n_items"] == "n/a"           # no feature tables here
    overlap = next(c for c in report.checks if c.check == "list_overlap")
    assert overlap.value == pytest.approx(0.5)
    assert "event_volume_change" in (lake.run_dir(cfg, "2026-11-22") / "drift.md").read_text()


def test_a_first_night_has_nothing_to_compare_and_passes(cfg):
    _night(cfg, "2026-11-22", 100, 1, {"u1": ["a"]}, published=False)
    report = drift.run(cfg, "2026-11-22")
    assert report.previous is None
    assert {c.status for c in report.checks} <= {"n/a", "info"}
