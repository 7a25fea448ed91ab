"""Atomic publish of a night's recommendations, with its manifest.

The lists are written aside (the staging area) by scoring and validated there. Publishing
checks that the validated files are exactly the staged files, writes `_manifest.json` and
`_SUCCESS` into the staging folder, then swaps it into `recommendations/ds=...`: readers see
the previous complete folder or the new complete folder, never a partial one nor none: on
Linux the swap is one atomic exchange (renameat2). Elsewhere it is two renames, and a
publish killed between them is repaired by the next publish of that night.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.compute as pc

from nightshelf import lake
from nightshelf.config import Config, MissingInput
from nightshelf.records import (
    CleanCounts,
    FeedbackRecord,
    GateRecord,
    RankerRecord,
    ScoreRecord,
    ValidationRecord,
)

log = logging.getLogger(__name__)

MANIFEST, SUCCESS = lake.MANIFEST, "_SUCCESS"
STAGES = ("raw", "clean", "features", "recommendations")


def build_manifest(cfg: Config, ds: str, staging: Path) -> dict:
    gate, score = GateRecord.read(cfg, ds), ScoreRecord.read(cfg, ds)
    ranker = RankerRecord.find(cfg, ds)
    table = lake.read_parquet(staging, ["user_id"])
    counts, feedback = CleanCounts.find(cfg, ds), FeedbackRecord.find(cfg, ds)
    validations = {}
    for stage in STAGES:
        v = ValidationRecord.find(cfg, ds, stage)
        validations[stage] = None if v is None else {
            "success": v.success, "suites": {s.suite: s.statistics for s in v.suites}}
    return {
        "ds": ds,
        "rows": table.num_rows,
        "users": pc.count_distinct(table.column("user_id")).as_py(),
        "top_n": score.top_n,
        "model_name": gate.model_name,
        "model_version": gate.serving.model_version,
        "serving": gate.serving.kind,
        "mlflow_run_id": gate.serving.run_id,
        "challenger": {"run_id": ranker.run_id if ranker else None,
                       "version": gate.challenger_version, "promoted": gate.promoted,
                       "reason": gate.reason},
        "input": {k: getattr(counts, k, None)
                  for k in ("rows_in", "clean", "duplicates", "quarantined")},
        "duplicates_by_kind": counts.duplicates_by_kind if counts else None,
        "quarantined_by_reason": counts.quarantined_by_reason if counts else None,
        "validation": validations,
        # the lists published the night before, scored against what users did today
        "served_feedback": feedback.summary() if feedback else None,
        "fingerprint": lake.fingerprint(staging),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def recover(target: Path) -> None:
    """Undo a publish that stopped between its two renames: put the old folder back."""
    olds = sorted(target.parent.glob(f".old-{target.name}"))
    for old in olds:
        if not target.exists():
            log.warning("publish: restoring %s left by an interrupted publish", old)
            os.rename(old, target)
        else:
            shutil.rmtree(old)


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 with RENAME_EXCHANGE).

    False where the kernel, C library or filesystem cannot; the caller then falls back to
    two renames, whose gap `recover` repairs.
    """
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def swap(staging: Path, target: Path) -> None:
    """Move `staging` to `target`, replacing it. Readers see the old folder or the new one:
    an existing target is exchanged with the staging folder in one atomic step where the
    system allows, else moved aside first (a crash in between is undone by `recover`)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.parent / f".old-{target.name}"
    recover(target)
    if target.exists() and exchange(staging, target):
        shutil.rmtree(staging)  # now the previous lists
        return
    if target.exists():
        os.rename(target, old)
    os.rename(staging, target)
    if old.exists():
        shutil.rmtree(old)


def publish(cfg: Config, ds: str) -> dict:
    staging = lake.staging_recommendations(cfg, ds)
    target = lake.recommendations(cfg, ds)
    recover(target)
    validated = ValidationRecord.find(cfg, ds, "recommendations")
    if not staging.is_dir():
        raise MissingInput(f"publish ds={ds}: nothing staged in {staging}; run score first")
    if not validated or not validated.success:
        raise RuntimeError(f"publish ds={ds}: the staged lists have not passed the "
                           f"recommendations suite; nothing published")
    if validated.fingerprint != lake.fingerprint(staging):
        raise RuntimeError(f"publish ds={ds}: the staged files changed after validation; "
                           f"validate again before publishing")
    for stale in (SUCCESS, MANIFEST):  # left by a publish of this night that was killed
        (staging / stale).unlink(missing_ok=True)
    manifest = build_manifest(cfg, ds, staging)
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    (staging / SUCCESS).write_text("")
    swap(staging, target)
    log.info("published ds=%s: %d rows for %d users (served by %s %s) -> %s", ds,
             manifest["rows"], manifest["users"], manifest["serving"],
             manifest["model_version"], target)
    return manifest
