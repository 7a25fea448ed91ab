"""Atomic publish: swap, recovery after an interrupted swap, refusal of unvalidated lists."""


import pytest

from nightshelf import lake
from nightshelf.lake import fingerprint
from nightshelf.publish import publish, recover, swap
from nightshelf.records import ValidationRecord

DS = "2026-11-22"


def _folder(path, content):
    path.mkdir(parents=True)
    (path / "part-0.parquet").write_text(content)
    return path


def test_swap_replaces_the_old_folder_whole(tmp_path):
    target = _folder(tmp_path / "ds=1", "old")
    staging = _folder(tmp_path / "staging", "new")
    swap(staging, target)
    assert (target / "part-0.parquet").read_text() == "new"
    assert not staging.exists() and not list(tmp_path.glob(".old-*"))


def test_recover_puts_back_the_old_folder_after_a_crash_between_renames(tmp_path):
    target = tmp_path / "ds=1"
    _folder(tmp_path / ".old-ds=1", "old")  # first rename done, second never happened
    recover(target)
    assert (target / "part-0.parquet").read_text() == "old"


def test_publish_refuses_unvalidated_or_changed_lists(cfg):
    staging = _folder(lake.staging_recommendations(cfg, DS), "rows")
    with pytest.raises(RuntimeError, match="not passed the recommendations suite"):
        publish(cfg, DS)
    ValidationRecord(ds=DS, stage="recommendations", success=True, suites=[], data_docs="",
                     fingerprint=fingerprint(staging)).write(cfg)
    (staging / "part-0.parquet").write_text("tampered")
    with pytest.raises(RuntimeError, match="changed after validation"):
        publish(cfg, DS)
    assert not lake.recommendations(cfg, DS).exists()


def test_the_fingerprint_follows_the_data_not_the_writers_bytes(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"user_id": ["u1", "u2"], "rank": pa.array([1, 1], pa.int32())})
    for name, codec in (("a", "snappy"), ("b", "zstd")):
        (tmp_path / name).mkdir()
        pq.write_table(table, tmp_path / name / "part-00000.parquet", compression=codec)
    assert (tmp_path / "a" / "part-00000.parquet").read_bytes() != (
        tmp_path / "b" / "part-00000.parquet").read_bytes()
    assert fingerprint(tmp_path / "a") == fingerprint(tmp_path / "b")
    (tmp_path / "c").mkdir()
    pq.write_table(table.set_column(1, "rank", pa.array([1, 2], pa.int32())),
                   tmp_path / "c" / "part-00000.parquet", compression="snappy")
    assert fingerprint(tmp_path / "c") != fingerprint(tmp_path / "a")
