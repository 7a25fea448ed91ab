"""Atomic publish of a night's recommendations, with its manifest.

The lists are written aside (the staging area) by scoring and validated there. Publishing
checks that the validated files are exactly the staged files and builds the manifest, whose
`files` names the night's data files. Then, by what the lake's filesystem can do:

- a local disk: the manifest and `_SUCCESS` go into the staging folder, which is swapped
  into `recommendations/ds=...`. Readers see the previous complete folder or the new one,
  never a partial one nor none: on Linux the swap is one atomic exchange (renameat2);
  elsewhere two renames, and a publish killed between them is repaired by the next publish
  of that night.
- a filesystem with no atomic rename (object stores: S3, GCS, ABFS; any fsspec filesystem):
  a pointer swap. The staged files are copied into the night's folder under names new to
  it, then the manifest, one object written in one PUT, is replaced: that is the moment the
  night changes. The files of the previous publish are deleted after it. A reader that goes
  by the manifest's `files` (as `lake.data_files` does) sees the old night or the new one;
  a plain folder listing can see both sets of files for the seconds between the copy and
  the clean-up, or after a publish killed there, until the night is published again.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.compute as pc

from nightshelf import lake, storage
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
        "files": [p.name for p in lake.data_files(staging)],
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


def swap_pointer(staging: Path, target: Path, manifest: dict) -> None:
    """Publish on a filesystem with no atomic rename: copy the staged files in under names
    of this publish, replace the manifest (the swap), then delete what it no longer names."""
    tag = uuid.uuid4().hex[:12]
    names = []
    for src in lake.data_files(staging):
        names.append(f"{tag}-{src.name}")
        storage.copy(src, target / names[-1])
    manifest["files"] = names
    storage.write_text(target / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
    storage.write_text(target / SUCCESS, "")
    for old in target.glob("*.parquet"):  # the previous publish's, or a killed one's
        if old.name not in names:
            storage.remove(old)
    storage.remove(staging)


def publish(cfg: Config, ds: str) -> dict:
    staging = lake.staging_recommendations(cfg, ds)
    target = lake.recommendations(cfg, ds)
    local = storage.renames_atomically(target)
    if local:
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
        storage.remove(staging / stale)
    manifest = build_manifest(cfg, ds, staging)
    if local:
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        (staging / SUCCESS).write_text("")
        swap(staging, target)
    else:
        swap_pointer(staging, target, manifest)
    log.info("published ds=%s: %d rows for %d users (served by %s %s) -> %s", ds,
             manifest["rows"], manifest["users"], manifest["serving"],
             manifest["model_version"], target)
    return manifest
