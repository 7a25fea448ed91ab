"""`make bench-quality-night PROFILE=...`: the night's models on a shop profile's holdout.

For a profile of the synthetic shop (`default`, `grocery`, `marketplace`: see
`nightshelf/shop_profiles.py`) it generates the shop in a home of its own, cleans its
history, then runs `--nights` consecutive nights ending at the shop's last day through the
real DAG (`nightshelf backfill`, as a user would). Each night trains SASRec and the ranker,
evaluates every model on that night's holdout and lets the gate decide; this collects each
night's table (NDCG@10, HR@10, catalog coverage per model, the gate's decision), writes it
as JSON, prints it as Markdown and logs it to MLflow (`bench-quality-night` run of the
home's experiment, `mlflow.log_table`).

    python bench/quality_night.py --profile grocery --out bench/results/quality-night-grocery.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = ("ranker", "champion", "sasrec", "popularity", "item_knn", "buy_again", "als")
METRICS = ("ndcg@10", "hr@10", "coverage")


def _nightshelf(env: dict, *args: str) -> None:
    cmd = [str(REPO / ".venv" / "bin" / "nightshelf"), *args]
    print(f"== {' '.join(args)}", flush=True)
    subprocess.run(cmd, env=env, check=True, cwd=REPO)


def rows_of(cfg, ds: str) -> list[dict]:
    from nightshelf.records import EvaluationRecord, GateRecord

    ev, gate = EvaluationRecord.read(cfg, ds), GateRecord.read(cfg, ds)
    out = []
    for model in MODELS:
        rep = ev.reports.get(model)
        if rep is None:
            continue
        out.append({"night": ds, "model": model, "users": rep["users"],
                    **{m: round(float(rep[m]), 4) for m in METRICS if m in rep},
                    # the holdout's slices: items fewer than 5 users touched before the split
                    # (cold) and the others; `cold_relevant`: (user, item) pairs touched there
                    **{f"{s}_{m}": round(float(rep[f"slice.{s}_items.{m}"]), 4)
                       for s in ("cold", "warm") for m in ("ndcg@10", "hr@10")
                       if f"slice.{s}_items.{m}" in rep},
                    "cold_relevant": rep.get("slice.cold_items.relevant"),
                    "served": (model == ("ranker" if gate.promoted else "champion")
                               and gate.serving.kind == "model") or gate.serving.kind == model})
    best = max((r for r in out if r["model"] not in ("ranker", "champion", "sasrec")),
               key=lambda r: r["ndcg@10"])
    for r in out:
        r["gate"] = gate.reason if r["model"] == "ranker" else ""
        r["ranker_over_best_baseline"] = (round(r["ndcg@10"] / best["ndcg@10"] - 1, 4)
                                          if r["model"] == "ranker" and best["ndcg@10"] else None)
    return out


def text_encoder() -> str | None:
    try:
        from training.text import encoder_name

        return encoder_name()
    except ImportError:
        return None


def table(rows: list[dict]) -> str:
    lines = ["| night | model | holdout users | NDCG@10 | HR@10 | coverage | cold NDCG@10 | "
             "warm NDCG@10 | served |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['night']} | {r['model']} | {r['users']:,} | {r['ndcg@10']:.4f} | "
                     f"{r['hr@10']:.4f} | {r.get('coverage', 0):.4f} | "
                     f"{r.get('cold_ndcg@10', 0):.4f} | {r.get('warm_ndcg@10', 0):.4f} | "
                     f"{'yes' if r['served'] else ''} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="grocery")
    p.add_argument("--name", default=None,
                   help="the run's name: its home under --root and its default --out "
                        "(the profile's name by default)")
    p.add_argument("--no-text", action="store_true",
                   help="text.enabled false: no item text (the ablation of the text features, "
                        "the text source and new items' SASRec placement)")
    p.add_argument("--nights", type=int, default=3)
    p.add_argument("--users", type=int, default=None, help="the shop's users (config default)")
    p.add_argument("--days", type=int, default=None,
                   help="days of history (config default; 56 for grocery, as real exports "
                        "span two months)")
    p.add_argument("--root", default=str(REPO / "var" / "bench-quality-night"))
    p.add_argument("--out", default=None)
    p.add_argument("--config", default=None,
                   help="a shop's config (NIGHTSHELF_CONFIG), e.g. bench/profiles/grocery.yaml")
    p.add_argument("--reuse", action="store_true",
                   help="keep a generated shop and its cleaned history")
    p.add_argument("--report-only", action="store_true",
                   help="only collect the nights an earlier run published in --root")
    a = p.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from nightshelf.config import load_config

    name = a.name or a.profile + ("-notext" if a.no_text else "")
    home = Path(a.root) / name
    env = {**os.environ, "NIGHTSHELF_HOME": str(home), "NIGHTSHELF__SHOP__PROFILE": a.profile,
           "TF_CPP_MIN_LOG_LEVEL": "2",
           "NIGHTSHELF_AIRFLOW_VENV": str(REPO / ".venv-airflow")}
    if a.no_text:
        env["NIGHTSHELF__TEXT__ENABLED"] = "false"
    if a.config:
        env["NIGHTSHELF_CONFIG"] = str(Path(a.config).resolve())
    if a.users:
        env["NIGHTSHELF__SHOP__USERS"] = str(a.users)
    days = a.days or (56 if a.profile == "grocery" else None)
    if days:
        env["NIGHTSHELF__SHOP__DAYS"] = str(days)
    cfg = load_config(environ=env)
    last = datetime.date.fromisoformat(cfg.shop.end)
    first = last - datetime.timedelta(days=a.nights - 1)
    t0 = time.monotonic()
    if not a.report_only:
        if not (a.reuse and (home / "landing").is_dir()):
            subprocess.run(["rm", "-rf", str(home)], check=True)
            _nightshelf(env, "generate")
        _nightshelf(env, "backfill", "--from", first.isoformat(), "--to", last.isoformat())
    rows = [r for i in range(a.nights)
            for r in rows_of(cfg, (first + datetime.timedelta(days=i)).isoformat())]
    result = {"profile": a.profile, "name": name, "config": a.config, "text": cfg.text.enabled,
              "text_encoder": text_encoder() if cfg.text.enabled else None, "users": cfg.shop.users,
              "days": cfg.shop.days, "nights": a.nights,
              # what shapes the ranker's training, whether from the config or the environment
              "ranker": {"label_windows": cfg.ranker.label_windows,
                         "members": cfg.ranker.members},
              "seconds": round(time.monotonic() - t0), "rows": rows}
    out = Path(a.out or REPO / "bench" / "results" / f"quality-night-{name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(rows))
    import mlflow
    import pandas as pd

    from nightshelf.tracking import setup_mlflow

    setup_mlflow(cfg)
    with mlflow.start_run(run_name=f"bench-quality-night {name}"):
        mlflow.set_tags({"bench": "quality-night", "profile": a.profile,
                         "text": str(cfg.text.enabled)})
        mlflow.log_table(pd.DataFrame(rows), artifact_file="quality_night.json")
        mlflow.log_text(table(rows), "quality_night.md")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
