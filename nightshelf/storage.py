"""Where the landing and the lake live: a local folder, or any fsspec filesystem by URI.

`locate` turns the config's `storage.landing` / `storage.lake` into a path object: a
`pathlib.Path` for a plain path or a `file://` URI, and a universal_pathlib `UPath` for any
other URI (`s3://bucket/lake`, `gs://`, `abfs://`, `hdfs://namenode/lake`, `memory://`...),
which has the same path API over that filesystem. Python steps go through that object;
Spark jobs get `str(path)`, the same URI, which Spark opens with its Hadoop filesystem for
the scheme (give the cluster that connector and its `spark.hadoop.*` settings, e.g.
`spark.hadoop.fs.s3.impl=org.apache.hadoop.fs.s3a.S3AFileSystem`).

What differs between filesystems is whether a folder can be renamed in one atomic step:
local disks and HDFS can, object stores cannot (a "rename" there is a copy of each object).
`renames_atomically` says which; publish uses it to choose between a folder swap and a
pointer swap (nightshelf/publish.py).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

LOCAL = ("", "file", "local")
# where publish swaps folders by rename: local disks. Elsewhere (object stores, and HDFS
# through fsspec, not yet tried) it swaps the manifest, which works on any filesystem
ATOMIC_RENAME = LOCAL


def locate(spec: str, default: Path, options: Mapping[str, Any] | None = None) -> Path:
    """The folder named by `spec` (a path or URI; "" for `default`)."""
    if not spec:
        return default
    scheme = urlsplit(spec).scheme
    if scheme in LOCAL or len(scheme) == 1:  # a path (or a Windows drive letter)
        raw = unquote(urlsplit(spec).path) if scheme in ("file", "local") else spec
        return Path(raw).expanduser().resolve()
    from upath import UPath

    # each task is its own process, and some look again and again (the landing sensor):
    # what another process wrote must be seen, so no cached listings (an S3 object replaced
    # elsewhere would otherwise be read by a stale ETag and fail as expired)
    return UPath(spec, **{"use_listings_cache": False, **(options or {})})


def protocol(path: Path) -> str:
    """The filesystem's protocol: "" for a local path."""
    proto = getattr(path, "protocol", "")
    return "" if proto in LOCAL else proto


def is_local(path: Path) -> bool:
    return protocol(path) == ""


def renames_atomically(path: Path) -> bool:
    """Can a folder on this filesystem be renamed in one atomic step?"""
    return protocol(path) in ATOMIC_RENAME


def arrow(path: Path) -> tuple[Any, str]:
    """(filesystem, path) for pyarrow: None and the local path, or the fsspec filesystem
    (pyarrow wraps it) and the path inside it."""
    if is_local(path):
        return None, str(path)
    return path.fs, path.path


def write_bytes(path: Path, data: bytes) -> None:
    """Write a small file so that a reader sees the old content or the new, never a part:
    locally written aside then renamed over; on an object store one PUT, which is atomic."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not is_local(path):
        path.write_bytes(data)
        return
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())


def remove(path: Path) -> None:
    """Delete a file or a folder and all it holds (nothing if it is not there)."""
    if is_local(path):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    elif path.exists():
        path.fs.rm(path.path, recursive=True)


def copy(src: Path, dst: Path) -> None:
    """Copy one file, within a filesystem or across two."""
    if is_local(src) and is_local(dst):
        shutil.copyfile(src, dst)
    elif protocol(src) == protocol(dst):
        src.fs.copy(src.path, dst.path)
    else:
        with src.open("rb") as fin, dst.open("wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
