"""The lake and landing by URI: a local path or file:// URI is a plain folder; any other
URI goes through its fsspec filesystem, where publish swaps the manifest instead of the
folder. Tried on an S3 API on loopback (moto's server, through s3fs: no rename, one PUT per
object) and on fsspec's in-memory filesystem."""

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from nightshelf import lake, storage
from nightshelf.config import load_config
from nightshelf.publish import MANIFEST, SUCCESS, publish
from nightshelf.records import GateRecord, ScoreRecord, Serving, ValidationRecord

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
DS = "2026-11-22"


def test_paths_and_file_uris_are_local_folders(tmp_path):
    assert storage.locate("", tmp_path) == tmp_path
    assert storage.locate(f"file://{tmp_path}/lake", Path("x")) == tmp_path / "lake"
    assert storage.locate(str(tmp_path / "lake"), Path("x")) == tmp_path / "lake"
    remote = storage.locate("memory://shop/lake", Path("x"))
    assert storage.protocol(remote) == "memory" and not storage.renames_atomically(remote)
    assert str(remote / "clean") == "memory://shop/lake/clean"  # what Spark is given


def test_the_config_points_the_lake_and_landing_anywhere(tmp_path):
    env = {"NIGHTSHELF_HOME": str(tmp_path / "home"),
           "NIGHTSHELF__STORAGE__LAKE": f"file://{tmp_path}/elsewhere/lake",
           "NIGHTSHELF__STORAGE__LANDING": "memory://drop/landing"}
    cfg = load_config(environ=env)
    assert lake.clean_events(cfg, DS) == tmp_path / "elsewhere/lake/clean/events/ds=2026-11-22"
    assert str(lake.landing_events(cfg, DS)) == "memory://drop/landing/events/ds=2026-11-22"
    assert lake.gx_root(cfg) == tmp_path / "home" / "gx"  # this machine's own things stay


CHILD = Path(__file__).with_name("publish_child.py")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    pytest.importorskip("s3fs")
    pytest.importorskip("moto")
    from tests.support.services import s3_server

    with s3_server(tmp_path_factory.mktemp("s3")) as options:
        yield options


def remote_env(tmp_path, kind: str, s3: dict | None) -> dict[str, str]:
    env = {"NIGHTSHELF_HOME": str(tmp_path / "home")}
    if kind == "s3":
        env["NIGHTSHELF__STORAGE__LAKE"] = f"s3://shop/{uuid.uuid4().hex[:8]}/lake"
        env["NIGHTSHELF__STORAGE__OPTIONS"] = json.dumps(s3)
    else:
        env["NIGHTSHELF__STORAGE__LAKE"] = f"memory://test-{uuid.uuid4().hex[:8]}/lake"
    return env


@pytest.fixture(params=["s3", "memory"])
def remote_cfg(request, tmp_path):
    s3 = request.getfixturevalue("s3") if request.param == "s3" else None
    cfg = load_config(environ=remote_env(tmp_path, request.param, s3))
    assert not storage.renames_atomically(lake.lake_root(cfg))
    yield cfg
    storage.remove(lake.lake_root(cfg))


def stage(cfg, items: list[str], version: str) -> None:
    staging = lake.staging_recommendations(cfg, DS)
    for k, chunk in enumerate((items[:1], items[1:])):
        table = pa.table({"user_id": [f"u{k}"] * len(chunk),
                          "rank": list(range(1, len(chunk) + 1)), "item_id": chunk})
        with (staging / f"part-0000{k}.parquet").open("wb") as out:
            pq.write_table(table, out)
    serving = Serving("model", version, f"run-{version}")
    ValidationRecord(ds=DS, stage="recommendations", success=True, suites=[], data_docs="",
                     fingerprint=lake.fingerprint(staging)).write(cfg)
    GateRecord(ds=DS, model_name="m", challenger_version=version, promoted=True,
               reason="test", metric="ndcg@10", champion_version=None, champion_metrics=None,
               serving=serving).write(cfg)
    ScoreRecord(ds=DS, users=2, rows=len(items), top_n=len(items), serving=serving,
                staging=str(staging), seconds=0.0).write(cfg)


def items(cfg) -> list[str]:
    return sorted(lake.read_parquet(lake.recommendations(cfg, DS)).column("item_id").to_pylist())


def test_publish_on_a_filesystem_without_rename_swaps_the_manifest(remote_cfg):
    cfg = remote_cfg
    stage(cfg, ["a", "b", "c"], "1")
    first = publish(cfg, DS)
    target = lake.recommendations(cfg, DS)
    assert (target / SUCCESS).exists() and not lake.staging_recommendations(cfg, DS).exists()
    assert sorted(p.name for p in target.glob("*.parquet")) == sorted(first["files"])
    assert json.loads((target / MANIFEST).read_text())["model_version"] == "1"
    assert items(cfg) == ["a", "b", "c"]

    stage(cfg, ["d", "e"], "2")  # the night again: the new files replace the old ones
    second = publish(cfg, DS)
    assert not set(first["files"]) & set(second["files"])
    assert sorted(p.name for p in target.glob("*.parquet")) == sorted(second["files"])
    assert items(cfg) == ["d", "e"]
    assert lake.fingerprint(target) != "" and lake.read_json(lake.manifest(cfg, DS)) == second


def test_a_publish_stopped_before_its_manifest_swap_changes_nothing(remote_cfg, monkeypatch):
    cfg = remote_cfg
    stage(cfg, ["a", "b"], "1")
    publish(cfg, DS)
    stage(cfg, ["x", "y", "z"], "2")
    real = storage.write_text

    def killed(path, text):
        if path.name == MANIFEST:
            raise KeyboardInterrupt("killed before the swap")
        real(path, text)

    monkeypatch.setattr(storage, "write_text", killed)
    with pytest.raises(KeyboardInterrupt):
        publish(cfg, DS)
    target = lake.recommendations(cfg, DS)
    assert len(list(target.glob("*.parquet"))) == 4  # the copied files are there, unnamed
    assert items(cfg) == ["a", "b"]                   # the manifest still says the old night
    assert lake.read_json(lake.manifest(cfg, DS))["model_version"] == "1"
    monkeypatch.setattr(storage, "write_text", real)
    publish(cfg, DS)  # the retry publishes and removes what the killed one left
    assert items(cfg) == ["x", "y", "z"] and len(list(target.glob("*.parquet"))) == 2


@pytest.mark.parametrize("point, seen", [("pointer-manifest", ["a", "b"]),
                                         ("pointer-cleanup", ["x", "y", "z"])])
def test_a_publish_to_s3_killed_at_any_point_leaves_a_whole_night(tmp_path, s3, point, seen):
    """SIGKILL a publishing process before its manifest swap, or after it but before the
    clean-up: the manifest names one whole night (the old one, or the new one); the next
    publish of the night leaves only the files it names."""
    env = remote_env(tmp_path, "s3", s3)
    cfg = load_config(environ=env)
    stage(cfg, ["a", "b"], "1")
    publish(cfg, DS)
    stage(cfg, ["x", "y", "z"], "2")
    proc = subprocess.Popen([sys.executable, str(CHILD), DS, point],
                            env={**os.environ, **env}, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "PAUSED"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert items(cfg) == seen
    publish(cfg, DS)
    assert items(cfg) == ["x", "y", "z"]
    target = lake.recommendations(cfg, DS)
    assert sorted(p.name for p in target.glob("*.parquet")) == sorted(
        lake.read_json(lake.manifest(cfg, DS))["files"])
    storage.remove(lake.lake_root(cfg))


def test_a_day_lands_on_s3_and_the_night_sees_it_complete(tmp_path, s3):
    """The landing contract on an object store: the day's files and then its marker; the
    sensor's check and the landing checks read them there (the marker written by another
    client, as a shop's export job would)."""
    import s3fs

    from nightshelf.landing import InputError, check_content, landed_files
    from nightshelf.shop_landing import COLUMNS, write_events

    env = remote_env(tmp_path, "s3", s3)
    env["NIGHTSHELF__STORAGE__LANDING"] = env.pop("NIGHTSHELF__STORAGE__LAKE").replace(
        "/lake", "/landing")
    cfg = load_config(environ=env)
    folder = lake.landing_events(cfg, DS)
    assert not lake.landing_complete(cfg, DS)
    for fmt in ("csv", "jsonl", "parquet"):
        write_events({c: [f"{c}-1", f"{c}-2"] for c in COLUMNS}, folder, fmt)
    assert [p.name for p in landed_files(folder, "events")] == ["events.parquet"]
    check_content(folder / "events.parquet", "events")
    assert not lake.landing_complete(cfg, DS)
    other = s3fs.S3FileSystem(key=s3["key"], secret=s3["secret"], endpoint_url=s3["endpoint_url"])
    other.touch(f"{(folder / cfg.landing.marker).path}")
    assert lake.landing_complete(cfg, DS)
    with (folder / "events.parquet").open("wb") as f:
        f.write(b"user_id,item_id\n")
    with pytest.raises(InputError, match="named .parquet but holds text"):
        check_content(folder / "events.parquet", "events")
    storage.remove(lake.landing_root(cfg))
