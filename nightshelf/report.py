"""The night's report: what came in, what was cleaned, how the model did, what was published."""

from __future__ import annotations

import logging
from pathlib import Path

from nightshelf import failures, lake, storage
from nightshelf.config import Config
from nightshelf.records import (
    CleanCounts,
    DriftRecord,
    EvaluationRecord,
    FeedbackRecord,
    GateRecord,
    RankerRecord,
    SasrecRecord,
)
from nightshelf.tracking import setup_mlflow

log = logging.getLogger(__name__)


def _read(path: Path) -> dict:
    return lake.read_json(path) or {}


def render(cfg: Config, ds: str) -> str:
    runs = lake.run_dir(cfg, ds)
    counts = CleanCounts.find(cfg, ds)
    sasrec, ranker = SasrecRecord.find(cfg, ds), RankerRecord.find(cfg, ds)
    ev, gate = EvaluationRecord.find(cfg, ds), GateRecord.find(cfg, ds)
    manifest = _read(lake.manifest(cfg, ds))
    lines = [f"# Nightshelf night {ds}", ""]
    if counts:
        lines += ["## Input", "",
                  f"- raw rows: {counts.rows_in}; clean: {counts.clean}; duplicates: "
                  f"{counts.duplicates} {counts.duplicates_by_kind}; quarantined: "
                  f"{counts.quarantined} {counts.quarantined_by_reason}", ""]
    if ev:
        lines += ["## Model", "", "| model | ndcg@10 | recall@10 | hr@10 |", "|---|---|---|---|"]
        names = {"ranker": "ranker (challenger)", "sasrec": "sasrec (candidates alone)"}
        for name, m in ev.reports.items():
            lines.append(f"| {names.get(name, name)} | {m['ndcg@10']:.4f} | "
                         f"{m['recall@10']:.4f} | {m['hr@10']:.4f} |")
        lines += ["", f"- holdout users: {ev.challenger['users']}, split at {ev.split}"]
    if sasrec and ranker:
        lines += [f"- SASRec v{sasrec.version}: {sasrec.epochs_run} epochs, "
                  f"{sasrec.train_seconds:.0f}s; ranker v{ranker.version}: {ranker.epochs_run} "
                  f"epochs, {ranker.train_seconds:.0f}s on {ranker.sizes.get('ranker_rows')} "
                  f"rows (negatives kept at {ranker.sizes.get('ranker_negative_rate')})"]
    if gate:
        lines += [f"- gate: {'PROMOTED' if gate.promoted else 'not promoted'} "
                  f"v{gate.challenger_version}: {gate.reason}",
                  f"- serving: {gate.serving.kind} v{gate.serving.model_version}", ""]
    fb = FeedbackRecord.find(cfg, ds)
    if fb:
        lines += _served_section(fb)
    drift = DriftRecord.find(cfg, ds)
    if drift:
        lines += ["## Drift", "", f"- compared with {drift.previous or 'no previous night'}: "
                  f"{len(drift.checks)} checks, {len(drift.flagged)} flagged "
                  f"({runs / 'drift.md'})"]
        lines += [f"- {c.status.upper()} {c.check} = {c.value} {c.note}"
                  for c in drift.flagged]
        lines.append("")
    if manifest:
        lines += ["## Published", "", f"- {lake.recommendations(cfg, ds)}",
                  f"- {manifest['rows']} rows for {manifest['users']} users, "
                  f"top {manifest['top_n']}",
                  "- validation: " + ", ".join(
                      f"{k}={'ok' if v and v['success'] else 'missing'}"
                      for k, v in manifest["validation"].items()), ""]
    failed = failures.read(cfg, ds)
    if failed:  # tries that failed before the night went through (retries, reruns)
        lines += [failures.section(failed)]
    lines += ["## Where to look", "", f"- Data Docs: {lake.data_docs_index(cfg)}",
              f"- MLflow UI: make ui  (store {cfg.tracking_uri})", ""]
    return "\n".join(lines)


def _pct(x) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _served_section(fb: FeedbackRecord) -> list[str]:
    """Yesterday's published lists against what users did today."""
    lines = ["## Served lists, scored the next day", ""]
    if not fb.served:
        return lines + [f"- the lists of {fb.served_ds}: nothing to score ({fb.skipped})", ""]
    f, n = fb.served, fb.top_n
    lines += [f"- the lists published for {fb.served_ds} (top {n}) against {fb.ds}: "
              f"{f['users_active']} of {f['users_listed']} listed users were active; "
              f"hr@{n} {_pct(f['overall']['hr'])}, ndcg@{n} {_pct(f['overall']['ndcg'])}; "
              f"{f['purchases_recommended']} of {f['purchases']} purchases were on the "
              f"buyer's list ({_pct(f['purchase_share'])})", "",
              f"| model version | active users | hr@{n} | ndcg@{n} |", "|---|---|---|---|"]
    lines += [f"| {v} | {r['users']} | {_pct(r['hr'])} | {_pct(r['ndcg'])} |"
              for v, r in f["by_model_version"].items()]
    lines += ["", "| reason | shown | hits | hit rate |", "|---|---|---|---|"]
    lines += [f"| {k} | {r['shown']} | {r['hits']} | {_pct(r['hit_rate'])} |"
              for k, r in f["by_reason"].items()]
    return lines + [""]


def write_report(cfg: Config, ds: str) -> Path:
    text = render(cfg, ds)
    path = lake.run_dir(cfg, ds) / "report.md"
    storage.write_text(path, text)
    sasrec = SasrecRecord.find(cfg, ds)
    if sasrec:
        import mlflow

        setup_mlflow(cfg)
        with mlflow.start_run(run_id=sasrec.run_id):
            mlflow.log_text(text, "report.md")
    print(text)
    return path
