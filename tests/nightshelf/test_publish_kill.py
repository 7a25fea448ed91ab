"""A publish killed with SIGKILL leaves the previously published lists whole and visible."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nightshelf import lake
from nightshelf.lake import fingerprint
from nightshelf.publish import SUCCESS
from nightshelf.records import GateRecord, ScoreRecord, Serving, ValidationRecord

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

DS = "2026-11-22"
CHILD = Path(__file__).with_name("publish_child.py")


def stage(cfg, items: list[str], version: str) -> None:
    """Scored, validated lists in the staging area, with the records publish reads."""
    staging = lake.staging_recommendations(cfg, DS)
    staging.mkdir(parents=True)
    table = pa.table({"user_id": ["u1"] * len(items), "rank": list(range(1, len(items) + 1)),
                      "item_id": items})
    pq.write_table(table, staging / "part-00000.parquet")
    runs = lake.run_dir(cfg, DS)
    runs.mkdir(parents=True, exist_ok=True)
    serving = Serving("model", version, f"run-{version}")
    ValidationRecord(ds=DS, stage="recommendations", success=True, suites=[], data_docs="",
                     fingerprint=fingerprint(staging)).write(cfg)
    GateRecord(ds=DS, model_name="m", challenger_version=version, promoted=True,
               reason="test", metric="ndcg@10", champion_version=None, champion_metrics=None,
               serving=serving).write(cfg)
    ScoreRecord(ds=DS, users=1, rows=len(items), top_n=len(items), serving=serving,
                staging=str(staging), seconds=0.0).write(cfg)


def published_items(cfg) -> list[str] | None:
    target = lake.recommendations(cfg, DS)
    if not (target / SUCCESS).exists():
        return None
    return pq.read_table(str(target / "part-00000.parquet")).column("item_id").to_pylist()


def run_child(cfg, point: str | None, kill: bool) -> None:
    env = {**os.environ, "NIGHTSHELF_HOME": str(cfg.home)}
    proc = subprocess.Popen([sys.executable, str(CHILD), DS, point or "none"], env=env,
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    if kill:
        assert line == "PAUSED"
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == (-signal.SIGKILL if kill else 0)


@pytest.mark.parametrize("point", ["manifest", "swapped"])
def test_a_publish_killed_midway_leaves_whole_lists_and_the_next_publish_completes(cfg, point):
    from nightshelf.publish import publish

    stage(cfg, ["old-a", "old-b"], "1")
    publish(cfg, DS)
    before = published_items(cfg)
    assert before == ["old-a", "old-b"]

    stage(cfg, ["new-a", "new-b", "new-c"], "2")
    run_child(cfg, point, kill=True)
    seen = published_items(cfg)
    # killed before the swap: the old lists; after it: the new ones; never a mix or nothing
    assert seen == (before if point == "manifest" else ["new-a", "new-b", "new-c"])
    manifest = json.loads(lake.manifest(cfg, DS).read_text())
    assert manifest["model_version"] == ("1" if point == "manifest" else "2")
    leftovers = sorted(p.name for p in lake.recommendations(cfg).iterdir())
    assert [n for n in leftovers if not n.startswith(".")] == [f"ds={DS}"]

    if point == "manifest":  # the night is rerun: publishing the staged lists completes
        run_child(cfg, None, kill=False)
        assert published_items(cfg) == ["new-a", "new-b", "new-c"]
