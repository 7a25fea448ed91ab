"""The job code as one zip for spark-submit's `--py-files`: what executors import (the
functions of `mapInPandas`, the models they load) reaches every worker with the job, so no
worker needs the driver's checkout. Named by the hash of its contents, so a night reuses the
zip of the code it runs and a changed checkout makes a new one.

`make package` writes it to `<home>/dist/`; the DAG's Spark tasks and `nightshelf bootstrap`
build (or reuse) it before each submit.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import zipfile
from pathlib import Path

# the first-party packages, as setup.cfg lists them
PACKAGES = ("nightshelf", "jobs", "training", "expectations")
SUFFIXES = (".py", ".yaml", ".json")
FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # the same files make the same bytes, whenever zipped
KEEP = 5  # zips kept in dist/: the newest, for jobs that started before the code changed


def package_dir(name: str) -> Path:
    """Where `name` is imported from (a checkout or site-packages), without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {name} is not importable: run `make install`")
    return Path(next(iter(spec.submodule_search_locations)))


def _files() -> list[tuple[str, Path]]:
    found = []
    for name in PACKAGES:
        root = package_dir(name)
        for path in root.rglob("*"):
            if (path.suffix in SUFFIXES and path.is_file()
                    and "__pycache__" not in path.parts and ".ipynb_checkpoints" not in path.parts):
                found.append((f"{name}/{path.relative_to(root).as_posix()}", path))
    return sorted(found)


def job_zip(dest: Path) -> Path:
    """The zip of the job code in `dest` (made if this code has none yet, atomically)."""
    files = _files()
    digest = hashlib.sha256()
    for arcname, path in files:
        digest.update(arcname.encode() + b"\0" + path.read_bytes() + b"\0")
    target = dest / f"nightshelf-jobs-{digest.hexdigest()[:12]}.zip"
    if target.exists():
        return target
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / f".{target.name}.{os.getpid()}"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, path in files:
            info = zipfile.ZipInfo(arcname, FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    os.replace(tmp, target)
    for old in sorted(dest.glob("nightshelf-jobs-*.zip"), key=lambda p: p.stat().st_mtime)[:-KEEP]:
        old.unlink(missing_ok=True)  # zips of code changed since (a night ships its own)
    return target
