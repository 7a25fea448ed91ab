"""How long the item text encoder takes: the titles of a synthetic catalog of `--items` items
(default 50k) embedded with the installed WordLlama wheel, cold (no cache) and again from
the cache; median of `--repeats` cold runs. Writes bench/results/text-encode.json.

    .venv/bin/python bench/text_encode.py [--items 50000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from nightshelf.config import load_config
from nightshelf.shop import make_catalog
from training.text import TextCache, TextEncoder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=50_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="bench/results/text-encode.json")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as home:
        cfg = load_config(environ={"NIGHTSHELF_HOME": home})
        shop = replace(cfg.shop, items=a.items)
        titles = [str(t) for t in make_catalog(shop, np.random.default_rng(shop.seed)).title]
        t0 = time.perf_counter()
        encoder = TextEncoder()
        load = time.perf_counter() - t0
        cold = []
        for r in range(a.repeats):
            t0 = time.perf_counter()
            encoder.encode(titles)
            cold.append(time.perf_counter() - t0)
            print(f"cold encode {r + 1}/{a.repeats}: {cold[-1]:.2f}s", flush=True)
        cache = TextCache(cfg, encoder)
        t0 = time.perf_counter()
        cache.vectors(titles)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        cache.vectors(titles)
        cached = time.perf_counter() - t0
    row = {"encoder": encoder.name, "items": len(titles), "load_seconds": round(load, 3),
           "encode_seconds_median": round(statistics.median(cold), 3),
           "encode_seconds_all": [round(x, 3) for x in cold],
           "titles_per_second": round(len(titles) / statistics.median(cold)),
           "first_night_seconds": round(first, 3), "cached_night_seconds": round(cached, 3),
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(row, indent=2) + "\n")
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
