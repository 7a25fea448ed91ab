"""The ranker's training rows: for each label window, every user who came back in it gets
their candidates and features as of the window's start (SASRec registered by the night's
`train` step), labelled by what they did inside the window.

One `mapInArrow` over the users per window (`training.partitions.rows`), each written to
`ranker_rows/ds=.../window<k>/`. Past `ranker.max_rows` (estimated from the window users
times the candidates asked per user) negatives are kept at a rate, by a hash of user and
item, and weighted up by its inverse; positives are always kept.

Run with spark-submit (the DAG does this through SparkSubmitOperator):

    spark-submit jobs/ranker_rows.py --ds 2026-11-22
"""

from __future__ import annotations

import logging
import time

from pyspark.sql import functions as F

from jobs.context import steps_of
from jobs.storage import remove_others, write_atomically
from jobs.users import map_users, sequences
from nightshelf import lake
from nightshelf import schema as S
from nightshelf.config import Config
from nightshelf.records import RowsRecord, SasrecRecord
from nightshelf.spark import job_main
from training import partitions

log = logging.getLogger("nightshelf.ranker_rows")


def window_users(steps, start, end):
    """(users who did something in [start, end), distinct (user, item) they touched)."""
    t = F.col(S.EVENT_TIME)
    inside = steps.filter((t >= F.lit(start)) & (t < F.lit(end)))
    row = inside.agg(F.countDistinct(S.USER).alias("users"),
                     F.countDistinct(S.USER, S.ITEM).alias("touched")).first()
    return int(row["users"]), int(row["touched"])


def run(spark, cfg: Config, ds: str) -> RowsRecord:
    t0 = time.monotonic()
    sas = SasrecRecord.read(cfg, ds)
    seqs = sequences(spark, cfg, ds)
    steps = steps_of(seqs).cache()
    bounds = {k: lake.label_window(cfg, ds, k)
              for k in range(1, cfg.ranker.label_windows + 1)}
    counts = {k: window_users(steps, *b) for k, b in bounds.items()}
    users = sum(u for u, _ in counts.values())
    expected = users * sum(cfg.ranker.candidates.values())
    rate = min(1.0, cfg.ranker.max_rows / max(expected, 1))
    log.info("ranker rows ds=%s: %d window users, up to %d candidates: negatives kept at %.3f",
             ds, users, expected, rate)
    stale = remove_others(spark, lake.ranker_rows(cfg, ds), {f"window{k}" for k in bounds})
    if stale:
        log.info("ranker rows ds=%s: removed %s, written by an earlier run with more label "
                 "windows", ds, ", ".join(stale))
    rows = positives = 0
    for k in bounds:
        job = partitions.Job(cfg, ds, f"window{k}", sasrec=(sas.name, sas.version),
                             negative_rate=rate)
        out = map_users(spark, seqs, partitions.rows, job, partitions.rows_schema())
        write_atomically(out, lake.ranker_rows(cfg, ds, k), spark)
        written = spark.read.parquet(str(lake.ranker_rows(cfg, ds, k)))
        got = written.agg(F.count("*").alias("n"), F.sum(partitions.LABEL).alias("p")).first()
        rows, positives = rows + got["n"], positives + int(got["p"] or 0)
        log.info("ranker rows ds=%s: window %d (%s .. %s): %d users, %d rows, %d positives", ds,
                 k, bounds[k][0].isoformat(), bounds[k][1].isoformat(), counts[k][0], got["n"],
                 int(got["p"] or 0))
    steps.unpersist()
    record = RowsRecord(ds=ds, sasrec_version=sas.version, rows=rows, positives=positives,
                        users=users, touched=sum(t for _, t in counts.values()),
                        negative_rate=rate, seconds=time.monotonic() - t0)
    record.write(cfg)
    log.info("ranker rows ds=%s: %d rows, %d positives (candidates hold %.0f%% of what users "
             "touched)", ds, rows, positives, 100 * record.candidate_recall)
    return record


def main(argv: list[str] | None = None) -> None:
    """spark-submit jobs/ranker_rows.py --ds YYYY-MM-DD [--config F]"""
    job_main(run, "ranker-rows", __doc__, argv)


if __name__ == "__main__":
    main()
