"""Drift and sanity checks, night over night, before anything is published.

Compares tonight (staged lists, tonight's counts and features) with the previous night
(its published lists, counts and features): raw event volume, duplicate and quarantine
rates, feature distributions (population stability index), the score distribution, and how
much of each user's list survived from the previous night. A value past its `warn`
threshold is reported; past `fail`, the night stops before publish. The report is written
as Markdown and JSON next to the night's records and logged to the night's MLflow run.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import numpy as np

from nightshelf import lake
from nightshelf import schema as S
from nightshelf import storage
from nightshelf.config import Config, UserError
from nightshelf.records import CleanCounts, DriftCheck, DriftRecord, GateRecord, SasrecRecord
from nightshelf.tracking import setup_mlflow

log = logging.getLogger(__name__)

FEATURES = {"users": ["n_items", "recency_days", "n_sessions"],
            "items": ["n_users", "price", "pop_view_7d"]}


class DriftFailed(UserError, RuntimeError):
    """A night-over-night check went past its `fail` threshold."""


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """Population stability index of `actual` against `expected`, on `expected`'s deciles.

    0 means the same distribution; by the usual rule of thumb < 0.1 is stable, 0.1-0.25 a
    shift worth a look, > 0.25 a different population.
    """
    expected = np.asarray(expected, float)[~np.isnan(np.asarray(expected, float))]
    actual = np.asarray(actual, float)[~np.isnan(np.asarray(actual, float))]
    if len(expected) == 0 or len(actual) == 0:
        return float("nan")
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)[1:-1]))
    e = np.bincount(np.searchsorted(edges, expected, side="right"), minlength=len(edges) + 1)
    a = np.bincount(np.searchsorted(edges, actual, side="right"), minlength=len(edges) + 1)
    e = np.maximum(e / e.sum(), 1e-4)
    a = np.maximum(a / a.sum(), 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


def list_overlap(today: dict[str, set[str]], before: dict[str, set[str]]) -> float:
    """Mean Jaccard overlap of the lists of users present both nights."""
    common = today.keys() & before.keys()
    if not common:
        return float("nan")
    return float(np.mean([len(today[u] & before[u]) / max(len(today[u] | before[u]), 1)
                          for u in common]))


def _lists(folder: Path) -> tuple[dict[str, set[str]], np.ndarray] | None:
    t = lake.read_parquet(folder, [S.USER, S.ITEM, S.SCORE])
    if t is None:
        return None
    t = t.to_pydict()
    lists: dict[str, set[str]] = {}
    for u, i in zip(t[S.USER], t[S.ITEM]):
        lists.setdefault(u, set()).add(i)
    return lists, np.array(t[S.SCORE], float)


def checks(cfg: Config, ds: str) -> DriftRecord:
    """Tonight against the previous night."""
    d = cfg.drift
    prev = (lake.parse_ds(ds) - timedelta(days=1)).isoformat()
    out: list[DriftCheck] = []

    def add(name: str, value: float | None, warn: float, fail: float, higher_is_worse=True,
            note: str = "") -> None:
        if value is None or np.isnan(value):
            status = "n/a"
        else:
            worse = (lambda t: value > t) if higher_is_worse else (lambda t: value < t)
            status = "fail" if worse(fail) else "warn" if worse(warn) else "ok"
        out.append(DriftCheck(check=name, value=None if value is None or np.isnan(value)
                              else round(float(value), 4), warn=warn, fail=fail,
                              status=status, note=note))

    a, b = CleanCounts.find(cfg, ds), CleanCounts.find(cfg, prev)
    if a and b:
        add("event_volume_change", abs(a.rows_in / max(b.rows_in, 1) - 1),
            d.volume_change_warn, d.volume_change_fail,
            note=f"{b.rows_in} -> {a.rows_in} raw rows")
        for rate in ("duplicate_rate", "quarantine_rate"):
            x, y = getattr(a, rate), getattr(b, rate)
            add(f"{rate}_change", abs(x - y), d.rate_change_warn, d.rate_change_fail,
                note=f"{y:.4f} -> {x:.4f}")
    for table, columns in FEATURES.items():
        now = lake.read_parquet(lake.features(cfg, table, ds), columns)
        old = lake.read_parquet(lake.features(cfg, table, prev), columns)
        for c in columns:
            value = (psi(np.array(old.column(c), float), np.array(now.column(c), float))
                     if now is not None and old is not None else None)
            add(f"psi.{table}.{c}", value, d.psi_warn, d.psi_fail)

    now_lists = _lists(lake.staging_recommendations(cfg, ds))
    if now_lists is None:  # a rerun after publish: tonight's lists are already in place
        now_lists = _lists(lake.recommendations(cfg, ds))
    old_lists = _lists(lake.recommendations(cfg, prev))
    gate_now, gate_old = GateRecord.find(cfg, ds), GateRecord.find(cfg, prev)
    kind_now = gate_now.serving.kind if gate_now else None
    kind_old = gate_old.serving.kind if gate_old else None
    if now_lists and old_lists:
        same = kind_now == kind_old
        add("psi.scores", psi(old_lists[1], now_lists[1]) if same else None,
            d.psi_warn, d.psi_fail,
            note="" if same else f"served by {kind_old} then {kind_now}: scales differ")
        add("list_overlap", list_overlap(now_lists[0], old_lists[0]), d.overlap_warn,
            d.overlap_fail, higher_is_worse=False, note="mean Jaccard of users' lists")
    if now_lists:
        s = now_lists[1]
        out.append(DriftCheck(check="scores", status="info", warn=None, fail=None, value=None,
                              note=f"min {s.min():.4f} median {np.median(s):.4f} "
                              f"max {s.max():.4f} over {len(s)} rows"))
    return DriftRecord(ds=ds, previous=prev if b else None, checks=out)


def render(report: DriftRecord) -> str:
    lines = [f"# Drift and sanity, night {report.ds}", "",
             f"Compared with: {report.previous or 'nothing (no previous night)'}", "",
             "| check | value | warn | fail | status | note |", "|---|---|---|---|---|---|"]
    for c in report.checks:
        cells = [c.check, c.value, c.warn, c.fail, c.status.upper(), c.note]
        lines.append("| " + " | ".join("" if x is None else str(x) for x in cells) + " |")
    return "\n".join(lines) + "\n"


def run(cfg: Config, ds: str) -> DriftRecord:
    """Write drift.json and drift.md, log them to the night's MLflow run; raise on a fail."""
    report = checks(cfg, ds)
    runs = lake.run_dir(cfg, ds)
    text = render(report)
    report.write(cfg)
    storage.write_text(runs / "drift.md", text)
    night_run = SasrecRecord.find(cfg, ds)
    if night_run:
        import mlflow

        setup_mlflow(cfg)
        with mlflow.start_run(run_id=night_run.run_id):
            mlflow.log_text(text, "drift.md")
            mlflow.log_metrics({f"drift.{c.check}": c.value for c in report.checks
                                if c.value is not None})
    for c in report.flagged:
        log.warning("drift ds=%s: %s %s = %s (warn %s, fail %s) %s", ds, c.status.upper(),
                    c.check, c.value, c.warn, c.fail, c.note)
    failed = [c for c in report.checks if c.status == "fail"]
    if failed:
        raise DriftFailed(
            f"ds={ds}: {len(failed)} drift check(s) past their fail threshold, nothing "
            f"published: " + "; ".join(f"{c.check}={c.value} (fails at {c.fail}) {c.note}"
                                       for c in failed)
            + f". See {runs / 'drift.md'}; if the change is real, raise drift.* in the config")
    log.info("drift ds=%s: %d checks, %d warnings, none failed", ds, len(report.checks),
             sum(c.status == "warn" for c in report.checks))
    return report
