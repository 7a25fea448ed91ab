"""Where the score job's worker spends its time: `training.partitions.score` over the first
N users of a night (sorted by user, as a partition is), in this process, on one core (one
TensorFlow and one BLAS thread, as a Spark Python worker runs), under cProfile.

Run it on a home where the night has run (the gate's served model is loaded from MLflow):

    NIGHTSHELF_HOME=var/bench-scale/M .venv/bin/python bench/profile_score.py --users 10000
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ds", default="2026-11-22")
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--top", type=int, default=30, help="profile lines to print")
    p.add_argument("--sort", default="cumulative", help="pstats sort key (e.g. tottime)")
    p.add_argument("--cpu", action="store_true",
                   help="time by this process's CPU time rather than the wall clock (for a "
                        "machine where other work shares the cores)")
    p.add_argument("--warmup", type=int, default=0,
                   help="users scored first, outside the profile (compiles, first calls)")
    a = p.parse_args(argv)

    import pyarrow.parquet as pq
    import tensorflow as tf

    from nightshelf import lake
    from nightshelf.config import load_config
    from nightshelf.records import GateRecord
    from nightshelf.tracking import setup_mlflow
    from training import partitions
    from training.score import serving_job

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    cfg = load_config()
    setup_mlflow(cfg)
    gate = GateRecord.read(cfg, a.ds)
    rankers, baselines = serving_job(gate)
    job = partitions.Job(cfg, a.ds, "cutoff", rankers=rankers, baselines=baselines,
                         run_id=gate.serving.run_id)
    table = pq.read_table(lake.features(cfg, "sequences", a.ds)).sort_by("user_id")
    warm, table = table.slice(0, a.warmup), table.slice(a.warmup, a.users)
    t0 = time.perf_counter()
    partitions.state(job)
    loaded = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in partitions.score(job, warm.to_batches(max_chunksize=10_000)):
        pass
    warmed = time.perf_counter() - t0
    clock = time.process_time if a.cpu else time.perf_counter
    profile = cProfile.Profile(clock)
    t0 = clock()
    profile.enable()
    rows = sum(b.num_rows for b in partitions.score(job, table.to_batches(max_chunksize=10_000)))
    profile.disable()
    seconds = clock() - t0
    print(f"state loaded in {loaded:.1f}s; {warm.num_rows} users to warm up in {warmed:.1f}s; "
          f"{table.num_rows} users, {rows} rows in "
          f"{seconds:.1f}s ({table.num_rows / seconds:.0f} users/s on one core"
          f"{', CPU time' if a.cpu else ''})")
    pstats.Stats(profile).sort_stats(a.sort).print_stats(a.top)


if __name__ == "__main__":
    main()
