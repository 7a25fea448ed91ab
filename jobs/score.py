"""Score every user: the gate's model over each user's candidates, top-N with reasons,
written to the staging area for validation and publishing.

One `mapInArrow` over the users (`training.partitions.score`): each Python worker loads the
registered ranker and its SASRec (or the served baseline) and the item context as of the
cutoff once, then scores its users in batches of `scoring.batch_size`.

Run with spark-submit (the DAG does this through SparkSubmitOperator):

    spark-submit jobs/score.py --ds 2026-11-22
"""

from __future__ import annotations

import logging
import time

from pyspark.sql import functions as F

from jobs.storage import write_atomically
from jobs.users import map_users, sequences
from nightshelf import lake
from nightshelf import schema as S
from nightshelf.config import Config
from nightshelf.records import GateRecord, ScoreRecord
from nightshelf.spark import job_main
from training import partitions
from training.score import schema, serving_job

log = logging.getLogger("nightshelf.score")


def run(spark, cfg: Config, ds: str) -> ScoreRecord:
    t0 = time.monotonic()
    gate = GateRecord.read(cfg, ds)
    serving = gate.serving
    rankers, baselines = serving_job(gate)
    job = partitions.Job(cfg, ds, "cutoff", rankers=rankers, baselines=baselines,
                         run_id=serving.run_id)
    log.info("score ds=%s: serving %s %s", ds, serving.kind, serving.model_version)
    out = map_users(spark, sequences(spark, cfg, ds), partitions.score, job, schema())
    staging = lake.staging_recommendations(cfg, ds)
    # each partition's users come sorted by id (`map_users`) and each list in rank order, so
    # every file is sorted by (user, rank) as written, with no sort of the output; named
    # without the write's id: a rerun writes the same files
    write_atomically(out, staging, spark, stable_names=True)
    written = spark.read.parquet(str(staging))
    # ranks are contiguous from 1 (the recommendations suite checks it): a user, a rank 1
    rows, users = written.count(), written.filter(F.col(S.RANK) == 1).count()
    record = ScoreRecord(ds=ds, users=users, rows=rows, top_n=cfg.scoring.top_n,
                         serving=serving, staging=str(staging), seconds=time.monotonic() - t0)
    record.write(cfg)
    log.info("score ds=%s: %d rows for %d users in %.0fs", ds, rows, users, record.seconds)
    return record


def main(argv: list[str] | None = None) -> None:
    """spark-submit jobs/score.py --ds YYYY-MM-DD [--config F]"""
    job_main(run, "score", __doc__, argv)


if __name__ == "__main__":
    main()
