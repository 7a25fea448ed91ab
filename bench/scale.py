"""`make bench-scale`: a whole night per scale tier, measured stage by stage.

For each tier (S: 1k users / 500 items, M: 50k / 10k, L: 500k / 50k; 30 days each) it
generates the synthetic shop in a home of its own, cleans the history before the night
(`nightshelf bootstrap`), then runs the night through the DAG exactly as `make night` does
(`nightshelf night`: `airflow dags test`). A sampler walks the process tree twice a second
(PSS every fourth walk; its own CPU time is printed: at four walks a second with PSS every
time it took up to 40% of a core, which the 2-core stages paid for): the sum of every
process's resident memory (Airflow, spark-submit's JVM, Python workers, TensorFlow) is
charged to the DAG task running at that moment, which it recognises
from the command lines the tasks spawn. Per stage it records wall seconds, rows per second
(each stage's own input: raw rows, clean events, users, training rows, published rows) and
peak RSS; for scoring also scores per second, the served models' FLOPs per score and this
machine's measured float32 matmul rate.

    python bench/scale.py --tiers S M --out bench/results/scale.json [--root /tmp/scale]
    python bench/scale.py --tiers L --again score   # one task again, on a tier whose night ran
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TIERS = {"S": (1_000, 500), "M": (50_000, 10_000), "L": (500_000, 50_000)}
DAYS, END = 30, "2026-11-22"
PAGE = os.sysconf("SC_PAGE_SIZE")

# a DAG task, recognised in the process tree by the command line it spawns
STAGES = [
    ("land", r"nightshelf land "), ("validate_raw", r"validate --stage raw"),
    ("clean", r"jobs/clean\.py"), ("validate_clean", r"validate --stage clean"),
    ("features", r"jobs/features\.py"), ("validate_features", r"validate --stage features"),
    ("context", r"jobs/context\.py"), ("train", r"nightshelf train --ds"),
    ("ranker_rows", r"jobs/ranker_rows\.py"), ("train_ranker", r"nightshelf train-ranker"),
    ("evaluate", r"jobs/evaluate\.py"), ("gate", r"nightshelf gate "),
    ("score", r"jobs/score\.py"),
    ("validate_recommendations", r"validate --stage recommendations"),
    ("drift", r"nightshelf drift "), ("publish", r"nightshelf publish "),
    ("report", r"nightshelf report "),
]


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(entry))
    return kids


def _tree(root: int) -> list[int]:
    kids, out, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _pss(pid: int) -> int:
    """Proportional set size: shared pages (libraries, the JVM's, forked workers') counted
    once across the tree, where RSS counts them in every process that maps them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class Sampler(threading.Thread):
    """Peak RSS and PSS of a process tree, overall and per recognised stage, and when each
    stage was first and last seen."""

    def __init__(self, root: int, stages=STAGES, every: float = 0.5, pss_every: int = 4):
        super().__init__(daemon=True)
        self.root, self.every, self.pss_every = root, every, pss_every
        self.patterns = [(name, re.compile(p)) for name, p in stages]
        self.peak, self.stages = {"peak": 0, "pss": 0}, {}  # the whole tree, and per stage
        self.done = threading.Event()
        self.cpu = 0.0  # the sampler's own CPU seconds

    def run(self) -> None:
        start, walks = time.thread_time(), 0
        while not self.done.is_set():
            pids = _tree(self.root)
            total = sum(_rss(p) for p in pids)
            # PSS (smaps_rollup walks the page tables of a multi-GB JVM) every few walks
            pss = sum(_pss(p) for p in pids) if walks % self.pss_every == 0 else 0
            walks += 1
            self.peak["peak"], self.peak["pss"] = (max(self.peak["peak"], total),
                                                   max(self.peak["pss"], pss))
            lines = " \n".join(_cmdline(p) for p in pids)
            now = time.monotonic()
            for name, pattern in self.patterns:
                if pattern.search(lines):
                    s = self.stages.setdefault(name, {"first": now, "last": now, "peak": 0,
                                                      "pss": 0})
                    s["last"], s["peak"] = now, max(s["peak"], total)
                    s["pss"] = max(s["pss"], pss)
            time.sleep(self.every)
        self.cpu = time.thread_time() - start


def measured(cmd: list[str], env: dict, stages=STAGES) -> tuple[float, Sampler]:
    """Run `cmd`, sampling its process tree; (wall seconds, sampler). Output goes to the
    console so progress shows; a failure stops the benchmark."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env)
    sampler = Sampler(proc.pid, stages)
    sampler.start()
    code = proc.wait()
    sampler.done.set()
    sampler.join()
    wall = time.monotonic() - t0
    print(f"bench-scale: the sampler used {sampler.cpu:.1f} s of CPU in {wall:.0f} s "
          f"({100 * sampler.cpu / max(wall, 1e-9):.1f}% of a core)", flush=True)
    if code:
        raise SystemExit(f"bench-scale: {' '.join(cmd)} failed with exit code {code}")
    return time.monotonic() - t0, sampler


def matmul_flops(n: int = 2048, repeats: int = 15) -> float:
    """This machine's float32 matmul rate (FLOP/s, median of `repeats` after a warm-up), all
    cores; measured before each tier, when nothing else of the benchmark runs."""
    import numpy as np

    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / float(np.median(times[1:]))


def _dense_flops(model) -> int:
    """Multiply-adds x 2 of a Keras model's Dense and cross layers, per input row (the
    members of an averaged ranker counted each)."""
    total = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if hasattr(layer, "layers"):  # a model inside the model: an ensemble's member
            total += _dense_flops(layer)
        elif kind == "Dense":
            total += 2 * int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
        elif kind == "CrossLayer":
            total += sum(2 * int(w.shape[0]) * int(w.shape[1]) for w in layer.weights
                         if len(w.shape) == 2)
    return total


def _sasrec_flops(scorer) -> int:
    """FLOPs of one user's next-item scores: the blocks over max_len positions (projections,
    attention, feed-forward) and the logits over the whole vocabulary."""
    from training.model import SASRec

    model = next(layer for layer in scorer.layers if isinstance(layer, SASRec))
    length, dim, vocab = model.max_len, model.dim, model.vocab_size
    per_block = 2 * length * dim * dim * 4 + 2 * 2 * length * length * dim \
        + 2 * 2 * length * dim * dim
    return model.blocks_n * per_block + 2 * dim * vocab


def scoring_flops(env: dict, ds: str, sample: int = 4096) -> dict:
    """FLOPs per scored candidate of the served ranker (DCN per candidate, plus its SASRec's
    per-user cost spread over the user's candidates), and the candidates a user really gets
    (the sources overlap), counted on a sample of users as the score job makes them."""
    code = f"""
import json, sys
import pyarrow.parquet as pq
from nightshelf import lake
from nightshelf.config import load_config
from nightshelf.records import GateRecord
from nightshelf.tracking import setup_mlflow
from training import candidates, partitions
from training.score import serving_job
from training.serve import load_registered
from training.steps import from_arrow
sys.path.insert(0, {str(REPO / 'bench')!r})
from scale import _dense_flops, _sasrec_flops
cfg = load_config()
setup_mlflow(cfg)
gate = GateRecord.read(cfg, {ds!r})
if gate.serving.kind != "model":
    print(json.dumps({{"kind": gate.serving.kind}})); sys.exit()
ranker, sasrec, settings = load_registered(cfg, gate.model_name, gate.serving.model_version)
rankers, _ = serving_job(gate)
st = partitions.state(partitions.Job(cfg, {ds!r}, "cutoff", rankers=rankers))
seqs = pq.read_table(lake.features(cfg, "sequences", {ds!r})).slice(0, {sample})
steps = from_arrow(seqs.combine_chunks().to_batches()[0], st.vocab_arrow)
cands = candidates.generate(st.ctx, steps, st.sasrec, settings.candidates)
print(json.dumps({{"kind": "model", "ranker": _dense_flops(ranker),
                  "sasrec": _sasrec_flops(sasrec),
                  "candidates": len(cands.rows) / max(len(steps), 1)}}))
"""
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, text=True,
                         capture_output=True).stdout.strip().splitlines()[-1]
    return json.loads(out)


def _records(home: Path, ds: str) -> dict:
    runs = home / "lake" / "runs" / f"ds={ds}"
    out = {}
    for name in ("score", "ranker_rows", "evaluation", "gate"):
        path = runs / f"{name}.json"
        out[name] = json.loads(path.read_text()) if path.exists() else {}
    counts = sorted((home / "lake" / "clean" / "_counts").glob("ds=*/counts.json"))
    out["clean_events"] = sum(json.loads(p.read_text())["clean"] for p in counts)
    night = home / "lake" / "clean" / "_counts" / f"ds={ds}" / "counts.json"
    out["raw_rows"] = json.loads(night.read_text())["rows_in"]
    seqs = home / "lake" / "features" / "sequences" / f"ds={ds}"
    import pyarrow.parquet as pq
    out["users"] = sum(pq.read_metadata(p).num_rows for p in seqs.glob("*.parquet"))
    return out


def stage_rows(stage: str, rec: dict) -> int:
    """The input a stage works through, in rows."""
    if stage in ("land", "validate_raw", "clean"):
        return rec["raw_rows"]
    if stage in ("validate_clean", "features"):
        return rec["clean_events"]
    if stage in ("ranker_rows", "train_ranker"):
        return rec["ranker_rows"].get("rows", 0)
    if stage in ("evaluate", "gate"):
        return rec["evaluation"].get("reports", {}).get("ranker", {}).get("users", 0)
    if stage in ("score", "validate_recommendations", "drift", "publish", "report"):
        return rec["score"].get("rows", 0)
    return rec["users"]  # validate_features, context, train: the users' sequences


def fresh_night(home: Path, ds: str) -> None:
    """Remove everything a night `ds` made in a tier's home (Airflow, MLflow, GX, the lake
    past the cleaned history), keeping the landed files and the cleaned days before `ds`."""
    for name in ("airflow", "mlflow", "gx"):
        subprocess.run(["rm", "-rf", str(home / name)], check=True)
    lake = home / "lake"
    for area in lake.iterdir() if lake.exists() else []:
        if area.name not in ("clean", "quarantine"):
            subprocess.run(["rm", "-rf", str(area)], check=True)
            continue
        for part in area.glob(f"*/ds={ds}"):
            subprocess.run(["rm", "-rf", str(part)], check=True)


def prepared(home: Path, ds: str) -> bool:
    """Whether a tier's home holds a generated shop whose history before `ds` is cleaned."""
    day_before = (datetime.date.fromisoformat(ds) - datetime.timedelta(days=1)).isoformat()
    return (home / "lake" / "clean" / "_counts" / f"ds={day_before}" / "counts.json").exists()


def generated(home: Path) -> bool:
    """Whether a tier's home holds all its landed days (the generator writes them in order,
    the last day's catalog last)."""
    return (home / "landing" / "catalog" / f"ds={END}").is_dir() and len(
        list((home / "landing" / "events").glob("ds=*"))) >= DAYS


CLI = str(Path(sys.executable).parent / "nightshelf")


def tier_env(tier: str, home: Path) -> dict:
    """The environment a tier's commands run in: its home and its shop's size."""
    users, items = TIERS[tier]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIGHTSHELF")}
    env.update({"NIGHTSHELF_HOME": str(home), "NIGHTSHELF__SHOP__USERS": str(users),
                "NIGHTSHELF__SHOP__ITEMS": str(items), "NIGHTSHELF__SHOP__DAYS": str(DAYS),
                "NIGHTSHELF__SHOP__END": END,
                "NIGHTSHELF_AIRFLOW_VENV": str(REPO / ".venv-airflow")})
    return env


def _row(rows: list[dict], tier: str, stage: str, seconds: float, n: int, memory: dict,
         **extra) -> None:
    users, items = TIERS[tier]
    peak, pss = memory["peak"], memory["pss"]
    rows.append({"tier": tier, "stage": stage, "users": users, "items": items,
                 "wall_seconds": round(seconds, 2), "rows": n,
                 "rows_per_second": round(n / max(seconds, 1e-9), 1),
                 "peak_rss_mb": round(peak / 2 ** 20, 1),
                 "peak_pss_mb": round(pss / 2 ** 20, 1), **extra})
    print(f"bench-scale {tier}: {stage}: {seconds:.1f}s, {n} rows, "
          f"peak RSS {peak / 2 ** 20:.0f} MB, PSS {pss / 2 ** 20:.0f} MB", flush=True)


def matmul_rate(when: str) -> float:
    """`matmul_flops`, printed: measured before each tier and again after its night (or its
    tasks run again), as this VM's rate drifts by 2x within an hour; scoring's share is given
    against both."""
    rate = matmul_flops()
    print(f"bench-scale: float32 matmul {rate / 1e9:.1f} GFLOP/s {when}", flush=True)
    return rate


def task_rows(row, s: "Sampler", rec: dict, env: dict, matmul: float, after: float,
              **extra_all) -> None:
    """A row per DAG task the sampler saw; scoring's with its rate against `matmul` (before
    the tier) and `after` (after the night)."""
    for stage, _ in STAGES:
        if stage in s.stages:
            st = s.stages[stage]
            wall = st["last"] - st["first"] + s.every  # each sample stands for its interval
            extra = dict(extra_all)
            if stage == "score":
                try:
                    flops = scoring_flops(env, END)
                except subprocess.CalledProcessError as exc:
                    print(f"bench-scale: FLOPs per score not counted: {exc.stderr[-500:]}",
                          flush=True)
                    flops = {}
                per_score = (flops["ranker"] + flops["sasrec"] / flops["candidates"]
                             if flops.get("kind") == "model" else 0)
                scored = rec["score"].get("users", 0) * flops.get("candidates", 0)
                per_second = scored / max(wall, 1e-9)
                rate = per_second * per_score
                extra.update({"scores_per_second": round(per_second, 1),
                              "flops_per_score": round(per_score),
                              "matmul_flops_per_second": round(matmul),
                              "share_of_matmul_rate": round(rate / matmul, 4),
                              "matmul_flops_per_second_after": round(after),
                              "share_of_matmul_rate_after": round(rate / after, 4)})
            row(stage, wall, stage_rows(stage, rec), st, **extra)


def run_again(tier: str, root: Path, matmul: float, earlier: list[dict],
              tasks: list[str]) -> list[dict]:
    """Run `tasks` of a tier's night again (`nightshelf task`: `airflow tasks test`, as the
    DAG runs them) on the home where the night ran; their rows replace the earlier ones,
    marked `again`."""
    home = root / tier
    if not (home / "lake" / "runs" / f"ds={END}" / "gate.json").exists():
        raise SystemExit(f"bench-scale {tier}: no night ran in {home}; run the tier first")
    env = tier_env(tier, home)
    rows = [r for r in earlier if r["tier"] == tier and r["stage"] not in tasks]
    row = functools.partial(_row, rows, tier)
    for task in tasks:
        print(f"bench-scale {tier}: task {task} again", flush=True)
        _, s = measured([CLI, "task", "--ds", END, "--task", task], env)
        task_rows(row, s, _records(home, END), env, matmul, matmul_rate("after the tasks"),
                  again=True)
    return rows


def run_tier(tier: str, root: Path, matmul: float, earlier: list[dict], *,
             reuse: bool = False, prepare_only: bool = False) -> list[dict]:
    users, items = TIERS[tier]
    home = root / tier
    env = tier_env(tier, home)
    rows: list[dict] = []
    row = functools.partial(_row, rows, tier)

    events_of = lambda: sum(_raw_rows(p) for p in  # noqa: E731
                            (home / "landing" / "events").glob("ds=*/events.*"))
    if reuse and prepared(home, END):
        print(f"bench-scale {tier}: reusing the shop and cleaned history in {home}", flush=True)
        rows += [r for r in earlier if r["tier"] == tier and r["stage"] in ("generate",
                                                                            "bootstrap")]
        events = rows[0]["events"] if rows else events_of()
        fresh_night(home, END)
    elif reuse and generated(home):  # a shop whose history was not all cleaned: go on
        print(f"bench-scale {tier}: going on with the shop in {home}", flush=True)
        rows += [r for r in earlier if r["tier"] == tier and r["stage"] == "generate"]
        events = events_of()
        fresh_night(home, END)
        seconds, s = measured([CLI, "bootstrap", "--until", END, "--only-new"], env, stages=[])
        row("bootstrap", seconds, events, s.peak, resumed=True)
    else:
        if home.exists():
            subprocess.run(["rm", "-rf", str(home)], check=True)
        print(f"bench-scale {tier}: {users} users, {items} items, {DAYS} days -> {home}",
              flush=True)
        seconds, s = measured([CLI, "generate"], env, stages=[])
        days = sum(1 for _ in (home / "landing" / "events").glob("ds=*"))
        events = events_of()
        row("generate", seconds, events, s.peak, days=days)
        seconds, s = measured([CLI, "bootstrap", "--until", END], env, stages=[])
        row("bootstrap", seconds, events, s.peak)
    if prepare_only:
        for r in rows:
            r["events"] = events
        return rows
    seconds, s = measured([CLI, "night", "--ds", END], env)
    rec = _records(home, END)
    task_rows(row, s, rec, env, matmul, matmul_rate("after the night"))
    # the night's holdout quality, kept with its cost: NDCG@10 per model and the gate's call
    reports = rec["evaluation"].get("reports", {})
    gate = rec["gate"]
    row("night", seconds, rec["raw_rows"], s.peak,
        ndcg_at_10={m: round(r["ndcg@10"], 4) for m, r in reports.items() if "ndcg@10" in r},
        promoted=gate.get("promoted"), gate_reason=gate.get("reason"))
    for r in rows:
        r["events"] = events
    return rows


def _raw_rows(path: Path) -> int:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq
        return pq.read_metadata(path).num_rows
    with path.open("rb") as f:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    return lines - (1 if path.suffix == ".csv" else 0)


def table(results: list[dict]) -> str:
    """The results as one Markdown table: a row per stage, a column group per tier."""
    tiers = [t for t in TIERS if any(r["tier"] == t for r in results)]
    by = {(r["tier"], r["stage"]): r for r in results}
    stages = ["generate", "bootstrap"] + [s for s, _ in STAGES] + ["night"]
    groups = [f"{t} wall s | {t} rows/s | {t} peak RSS / PSS MB" for t in tiers]
    head = "| stage | " + " | ".join(groups) + " |"
    lines = [head, "|---|" + "---|---|---|" * len(tiers)]
    for stage in stages:
        if not any((t, stage) in by for t in tiers):
            continue
        cells = []
        for t in tiers:
            r = by.get((t, stage))
            mb = (lambda v: "-" if v is None else f"{v:,.0f}")  # noqa: E731
            cells += (["", "", ""] if r is None else
                      [f"{r['wall_seconds']:,.0f}", f"{r['rows_per_second']:,.0f}",
                       f"{mb(r['peak_rss_mb'])} / {mb(r.get('peak_pss_mb'))}"])
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiers", nargs="+", default=["S", "M", "L"], choices=list(TIERS))
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "scale.json"))
    p.add_argument("--root", default=str(REPO / "var" / "bench-scale"),
                   help="where each tier's home is made (one folder per tier)")
    p.add_argument("--reuse", action="store_true",
                   help="reuse a tier's generated shop and cleaned history when its home has "
                        "them (their rows are kept from --out); the night's outputs are "
                        "removed first")
    p.add_argument("--prepare", action="store_true",
                   help="only generate each tier's shop and clean its history")
    p.add_argument("--again", nargs="+", metavar="TASK",
                   help="on a tier whose night ran, run these DAG tasks again (e.g. score) "
                        "and replace their rows")
    p.add_argument("--table", action="store_true",
                   help="print the results in --out as a Markdown table, run nothing")
    a = p.parse_args(argv)
    out = Path(a.out)
    results = json.loads(out.read_text()) if out.exists() else []
    if a.table:
        print(table(results))
        return
    for tier in a.tiers:
        matmul = matmul_rate("on this machine")
        rows = (run_again(tier, Path(a.root), matmul, results, a.again) if a.again else
                run_tier(tier, Path(a.root), matmul, results, reuse=a.reuse,
                         prepare_only=a.prepare))
        results = [r for r in results if r.get("tier") != tier] + rows
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"bench-scale {tier}: written to {out}", flush=True)


if __name__ == "__main__":
    main()
