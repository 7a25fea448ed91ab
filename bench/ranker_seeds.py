"""How much one night's ranker moves with its seed, and how much averaging members cancels.

On a home where a night has run (for example `make bench-quality-night PROFILE=launches`'s
`var/bench-quality-night/launches`), for each seed it retrains that night's ranker on the
night's own training rows (`nightshelf train-ranker --force` with `model.seed` and
`ranker.members` set) and re-runs the night's evaluation job (`jobs/evaluate.py`), then
records the ranker's holdout NDCG@10 overall and on the cold- and warm-item slices. SASRec,
the rows and the holdout stay as the night made them.

It registers a new ranker version per seed in the home's MLflow and rewrites the night's
ranker and evaluation records: run it on a bench home, not on a shop's.

    python bench/ranker_seeds.py --home var/bench-quality-night/launches --profile launches \\
        --ds 2026-11-20 --members 1 3 --seeds 13 1 2 3 4 --out bench/results/ranker-seeds.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SLICES = {"ndcg@10": "ndcg@10", "cold_ndcg@10": "slice.cold_items.ndcg@10",
          "warm_ndcg@10": "slice.warm_items.ndcg@10"}


def one(env: dict, ds: str, seed: int, members: int) -> dict:
    env = {**env, "NIGHTSHELF__MODEL__SEED": str(seed),
           "NIGHTSHELF__RANKER__MEMBERS": str(members)}
    bin_ = REPO / ".venv" / "bin"
    t0 = time.monotonic()
    for cmd in ([str(bin_ / "nightshelf"), "train-ranker", "--ds", ds, "--force"],
                [str(bin_ / "spark-submit"), str(REPO / "jobs" / "evaluate.py"), "--ds", ds]):
        subprocess.run(cmd, env=env, check=True, cwd=REPO, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    runs = Path(env["NIGHTSHELF_HOME"]) / "lake" / "runs" / f"ds={ds}"
    report = json.loads((runs / "evaluation.json").read_text())["reports"]["ranker"]
    record = json.loads((runs / "ranker.json").read_text())
    return {"members": members, "seed": seed, "epochs": record["epochs_run"],
            **{k: round(report[v], 4) for k, v in SLICES.items()},
            "cold_relevant": report["slice.cold_items.relevant"],
            "seconds": round(time.monotonic() - t0)}


def summary(rows: list[dict]) -> list[dict]:
    out = []
    for m in sorted({r["members"] for r in rows}):
        mine = [r for r in rows if r["members"] == m]
        out.append({"members": m, "seeds": len(mine), **{
            f"{k}_{f.__name__}": round(f([r[k] for r in mine]), 4)
            for k in SLICES for f in (statistics.mean, statistics.pstdev, min, max)}})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--home", required=True, type=Path)
    p.add_argument("--profile", required=True, help="the shop profile the home was made with")
    p.add_argument("--ds", required=True, help="a night that has run in that home")
    p.add_argument("--seeds", type=int, nargs="+", default=[13, 1, 2, 3, 4])
    p.add_argument("--members", type=int, nargs="+", default=[1, 3])
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    env = {**os.environ, "NIGHTSHELF_HOME": str(a.home.resolve()),
           "NIGHTSHELF__SHOP__PROFILE": a.profile, "PYTHONPATH": str(REPO),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    rows = []
    for members in a.members:
        for seed in a.seeds:
            rows.append(one(env, a.ds, seed, members))
            print(json.dumps(rows[-1]), flush=True)
    result = {"home": str(a.home), "profile": a.profile, "ds": a.ds, "rows": rows,
              "summary": summary(rows)}
    a.out.write_text(json.dumps(result, indent=1) + "\n")
    for s in result["summary"]:
        print(json.dumps(s), flush=True)


if __name__ == "__main__":
    main()
