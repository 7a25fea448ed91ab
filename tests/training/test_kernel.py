"""The kernels' machine code is cached on disk and found again by a new process, also when
the code is imported from a zip at another path (as Spark ships it); without a writable
cache directory they are compiled as usual."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

RUN = """
import json, sys
import numpy as np
from training import topk
scores = np.random.default_rng(0).standard_normal((4, 500)).astype(np.float32)
top, _, _ = topk.masked_top(scores, 20, relative=True)
stats = topk._top_keys.stats
print(json.dumps({"hits": sum(stats.cache_hits.values()),
                  "misses": sum(stats.cache_misses.values()), "top": top[0].tolist()}))
"""


def _run(cache: str, path: str) -> dict:
    env = {**os.environ, "NIGHTSHELF_KERNEL_CACHE": cache, "PYTHONPATH": path}
    out = subprocess.run([sys.executable, "-c", RUN], env=env, check=True, text=True,
                         capture_output=True, cwd="/").stdout
    return json.loads(out.strip().splitlines()[-1])


def _zip(dest: Path) -> Path:
    dest.parent.mkdir(parents=True)
    with zipfile.ZipFile(dest, "w") as z:
        for f in (REPO / "training").glob("*.py"):
            z.write(f, f"training/{f.name}")
    return dest


def test_a_new_process_loads_the_kernels_from_the_cache_also_from_a_moved_zip(tmp_path):
    cache = str(tmp_path / "cache")
    first = _run(cache, str(_zip(tmp_path / "a" / "jobs.zip")))
    assert first["misses"] > 0 and first["hits"] == 0
    again = _run(cache, str(_zip(tmp_path / "b" / "jobs.zip")))  # another app's copy
    assert again["hits"] > 0 and again["misses"] == 0
    assert again["top"] == first["top"]


def test_without_a_writable_cache_the_kernels_are_compiled(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    got = _run(str(blocked / "cache"), str(REPO))
    assert got["hits"] == 0 and len(got["top"]) == 20
