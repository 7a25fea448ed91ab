"""Writing lake partitions atomically (used only by jobs' run())."""

from __future__ import annotations

import json
import logging
import re
import uuid
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from nightshelf import storage

log = logging.getLogger(__name__)


def _fs(spark: SparkSession, path: str):
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hpath, jvm


def write_atomically(df: DataFrame, path: Path, spark: SparkSession,
                     stable_names: bool = False) -> None:
    """Write Parquet aside, then swap it in: readers see the old partition or the new one.

    Goes through the Hadoop FileSystem API, so it behaves the same on local disk and HDFS.
    With `stable_names`, the part files lose the write's random id (`part-00003.parquet`), so
    the same rows written twice are the same files.
    """
    tmp = path.parent / f".tmp-{path.name}-{uuid.uuid4().hex[:8]}"
    df.write.mode("overwrite").parquet(str(tmp))
    if stable_names:
        fs, folder, jvm = _fs(spark, str(tmp))
        for status in fs.listStatus(folder):
            name = status.getPath().getName()
            match = PART.match(name)
            if match:
                fs.rename(status.getPath(),
                          jvm.org.apache.hadoop.fs.Path(folder, f"{match.group(1)}.parquet"))
    swap_into_place(spark, tmp, path)


PART = re.compile(r"^(part-\d+)-.*\.parquet$")


def swap_into_place(spark: SparkSession, tmp: Path, path: Path) -> None:
    fs, target, jvm = _fs(spark, str(path))
    aside = path.parent / f".old-{path.name}-{uuid.uuid4().hex[:8]}"
    old = jvm.org.apache.hadoop.fs.Path(str(aside))
    if fs.exists(target):
        fs.rename(target, old)
    if not fs.rename(jvm.org.apache.hadoop.fs.Path(str(tmp)), target):
        raise IOError(f"could not move {tmp} to {path}")
    if fs.exists(old):
        fs.delete(old, True)


def remove_others(spark: SparkSession, folder: Path, keep: set[str]) -> list[str]:
    """Delete the sub-folders of `folder` (a job's own output) whose names are not in `keep`,
    e.g. the label windows an earlier run of the night wrote past tonight's count."""
    fs, base, _ = _fs(spark, str(folder))
    if not fs.exists(base):
        return []
    gone = []
    for status in fs.listStatus(base):
        name = status.getPath().getName()
        if status.isDirectory() and name not in keep and not name.startswith("."):
            fs.delete(status.getPath(), True)
            gone.append(name)
    return gone


def partition_days(spark: SparkSession, folder: Path) -> list[str]:
    """The `ds=YYYY-MM-DD` partitions under `folder` (their dates, sorted), on any filesystem;
    none if the folder is not there."""
    fs, base, _ = _fs(spark, str(folder))
    if not fs.exists(base):
        return []
    return sorted(m.group(1) for status in fs.listStatus(base) if status.isDirectory()
                  for m in [DS_PART.match(status.getPath().getName())] if m)


DS_PART = re.compile(r"^ds=(\d{4}-\d{2}-\d{2})$")


def write_json(data: dict, path: Path) -> None:
    """A small JSON record (counts), written atomically on any filesystem."""
    storage.write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str))
