"""A night's failed tasks, recorded by the DAG's failure callback: which task, which try,
its error, when. They go to `lake/runs/ds=.../failures.json` and into the night's report
(`report.md`), so a night that stopped says where and why next to its other records,
without opening the task logs."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from nightshelf import lake, storage
from nightshelf.config import Config

ERROR_CHARS = 2000


def record(cfg: Config, ds: str, task: str, try_number: int, error: str) -> dict:
    """Append one failure to the night's records and to its report; returns the entry."""
    runs = lake.run_dir(cfg, ds)
    entry = {"task": task, "try": try_number, "error": error[-ERROR_CHARS:],
             "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    path = runs / "failures.json"
    entries = (lake.read_json(path) or []) + [entry]
    storage.write_text(path, json.dumps(entries, indent=2))
    report = runs / "report.md"
    head = report.read_text() if report.exists() else f"# Nightshelf night {ds}\n"
    head = head.split("\n## Failed tasks")[0]  # the section is written anew, whole
    storage.write_text(report, head.rstrip() + "\n\n" + section(entries).rstrip() + "\n")
    return entry


def read(cfg: Config, ds: str) -> list[dict]:
    return lake.read_json(lake.run_dir(cfg, ds) / "failures.json") or []


def section(entries: list[dict]) -> str:
    """Markdown: one line per failed try."""
    if not entries:
        return ""
    lines = ["## Failed tasks", ""]
    for e in entries:
        first = (e["error"].strip().splitlines() or [""])[-1]
        lines.append(f"- {e['at']} `{e['task']}` (try {e['try']}): {first}")
    return "\n".join(lines) + "\n"


def airflow_callback(context) -> None:
    """`on_failure_callback` of the nightly DAG's tasks."""
    from nightshelf.config import load_config

    ti = context["task_instance"]
    record(load_config(), context["ds"], ti.task_id, int(getattr(ti, "try_number", 0) or 0),
           str(context.get("exception") or "failed (see the task log)"))
