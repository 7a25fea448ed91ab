"""What a Spark Python worker does with its partition of users.

Every job whose size grows with users is one `mapInArrow` over the sequences table
(`jobs/ranker_rows.py`, `jobs/evaluate.py`, `jobs/score.py`). The functions handed to
Spark (`rows`, `evaluate`, `score`) take `(job, batches)`: `job` is a small description
(the config, the night, the point in time, which registered models to load) and `batches`
the partition's Arrow record batches. Everything catalog-sized (vocabulary, catalog, item
context, models) is loaded once per Python worker and kept while the worker lives (Spark
reuses its workers), then each record batch is cut into `scoring.batch_size` users and
handed to the same kernel the tests run without Spark.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from nightshelf import lake
from nightshelf import schema as S
from nightshelf.config import Config
from training import candidates, inputs, lists, serve
from training.candidate_set import NUMERIC
from training.context import ItemContext
from training.evaluate import Evaluation
from training.score import recommendations
from training.steps import Steps, from_arrow

log = logging.getLogger(__name__)

ALS_ITEMS = "als_items"   # evaluate: ALS's list per user, joined onto the sequences
LABEL, WEIGHT, WINDOW = "label", "weight", "window"

ListMaker = Callable[[ItemContext, Steps, int], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Job:
    """What a worker needs to know: picklable, small."""
    cfg: Config
    ds: str
    point: str                                   # the context's point in time
    rankers: tuple[tuple[str, str, str], ...] = ()  # (role, registered name, version)
    sasrec: tuple[str, str] | None = None        # (registered name, version): SASRec alone
    baselines: tuple[str, ...] = ()              # popularity, item_knn, buy_again (als: joined)
    run_id: str = ""                             # MLflow run of the served model (score)
    negative_rate: float = 1.0                   # ranker rows: share of negatives kept


@dataclass
class State:
    vocab: np.ndarray
    vocab_arrow: object
    ctx: ItemContext
    makers: dict[str, ListMaker] = field(default_factory=dict)
    sasrec: Callable[[Steps], np.ndarray] | None = None


_STATE: dict[str, State] = {}


def state(job: Job) -> State:
    """The worker's state for `job`, loaded on first use (one job's state at a time)."""
    key = repr(job)
    if key not in _STATE:
        _STATE.clear()
        t0 = time.monotonic()
        _STATE[key] = _load(job)
        log.warning("worker %d: state for ds=%s %s (%s) loaded in %.1fs", os.getpid(), job.ds,
                    job.point, ", ".join(_STATE[key].makers) or "SASRec",
                    time.monotonic() - t0)
    return _STATE[key]


def _load(job: Job) -> State:
    import pyarrow as pa

    cfg = job.cfg
    vocab = inputs.night_vocab(cfg, job.ds)
    catalog = inputs.load_catalog(cfg, job.ds)
    ctx = inputs.load_context(cfg, job.ds, job.point, vocab, catalog)
    st = State(vocab, pa.array(list(vocab), pa.string()), ctx)
    makers = {"popularity": lists.popular, "item_knn": lists.covisited,
              "buy_again": lists.buy_again}
    st.makers.update({b: makers[b] for b in job.baselines if b in makers})
    if job.rankers or job.sasrec:
        models, st.sasrec = serve.load_models(cfg, job.rankers, job.sasrec, vocab)
        st.makers.update(models)
    return st


def _batches(job: Job, record_batches) -> Iterator[tuple[object, Steps]]:
    st = state(job)
    for rb in record_batches:
        yield rb, from_arrow(rb, st.vocab_arrow)


def score(job: Job, record_batches) -> Iterator:
    """Recommendations (the published schema) for every user of the partition, by the one
    model of `job` (a ranker version, or a baseline that serving can serve)."""
    st = state(job)
    (kind, maker), = st.makers.items()
    (_, _, version), = job.rankers or ((None, None, f"baseline:{kind}"),)
    users, busy = 0, 0.0
    for _, steps in _batches(job, record_batches):
        for batch in steps.batches(job.cfg.scoring.batch_size):
            t0 = time.monotonic()
            out = recommendations(job.cfg, st.ctx, batch, maker, kind, version, job.run_id)
            users, busy = users + len(batch), busy + time.monotonic() - t0
            yield from out.to_batches()
    log.warning("worker %d: scored %d users in %.1fs (%.0f users/s)", os.getpid(), users,
                busy, users / max(busy, 1e-9))


def evaluate(job: Job, record_batches) -> Iterator:
    """Metric sums of every model over the partition's holdout users (`Evaluation.rows`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cfg, st = job.cfg, state(job)
    ks = sorted(set(cfg.model.metrics_k) | {cfg.scoring.top_n})
    k, bs = max(ks), cfg.scoring.batch_size
    ev = Evaluation(st.ctx, ks)
    excl = cfg.scoring.exclusion_window_days
    for rb, steps in _batches(job, record_batches):
        kept = steps.rows_before(st.ctx.at)
        before, after = steps.cut(st.ctx.at, excl)
        hold = np.nonzero(after.lengths > 0)[0]
        als = None
        if ALS_ITEMS in rb.schema.names:
            col = rb.column(ALS_ITEMS)
            lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
            idx = pc.fill_null(pc.index_in(pc.list_flatten(col), value_set=st.vocab_arrow),
                               0).to_numpy(zero_copy_only=False)
            als = (np.concatenate([[0], np.cumsum(lengths)]), idx)
        for start in range(0, len(hold), bs):
            chunk = hold[start:start + bs]
            b, a = before.take(chunk), after.take(chunk)
            fallback = lists.popular(st.ctx, b, k)
            for name, make in st.makers.items():
                ev.add(name, lists.fill(*make(st.ctx, b, k), *fallback)[0], b, a)
            if als is not None:
                ranked = _joined_lists(st.ctx, b, kept[chunk], als, k)
                ev.add("als", lists.fill(ranked, np.zeros(ranked.shape, np.float32),
                                         *fallback)[0], b, a)
    yield pa.RecordBatch.from_pydict(ev.rows(), schema=evaluation_schema())


def evaluation_schema():
    import pyarrow as pa

    return pa.schema([("model", pa.string()), ("kind", pa.string()), ("key", pa.string()),
                      ("value", pa.float64())])


def _joined_lists(ctx: ItemContext, steps: Steps, rows: np.ndarray, als, k: int) -> np.ndarray:
    """[n, k] lists from a list column joined onto the record batch (best first)."""
    ptr, idx = als
    lengths = ptr[rows + 1] - ptr[rows]
    r = np.repeat(np.arange(len(rows)), lengths)
    pos = np.concatenate([np.arange(n) for n in lengths]) if len(rows) else np.zeros(0, int)
    items = idx[np.repeat(ptr[rows], lengths) + pos].astype(np.int64)
    ok = (items > 1) & candidates.allowed(ctx, candidates.masked_keys(ctx, steps), r, items)
    return lists.from_pairs(len(rows), r[ok], items[ok], -pos[ok].astype(np.float32), k)[0]


def rows(job: Job, record_batches) -> Iterator:
    """The ranker's training rows of label window `job.point` (`windowK`): candidates as of
    its start, labelled by what users did inside it; negatives kept at
    `job.negative_rate` (by a hash of user and item, so reruns keep the same rows) and
    weighted up by its inverse."""
    import pyarrow as pa

    cfg, st = job.cfg, state(job)
    window = int(job.point.removeprefix("window"))
    start, end = lake.label_window(cfg, job.ds, window)
    excl, size = cfg.scoring.exclusion_window_days, st.ctx.size
    for _, steps in _batches(job, record_batches):
        upto, _ = steps.cut(end, excl)
        known, after = upto.cut(start, excl)
        users = np.nonzero(after.lengths > 0)[0]
        for s in range(0, len(users), cfg.scoring.batch_size):
            chunk = users[s:s + cfg.scoring.batch_size]
            b = known.take(chunk)
            cands = candidates.generate(st.ctx, b, st.sasrec, cfg.ranker.candidates)
            y, w = candidates.labels(cands, after.take(chunk), size, cfg.events.weights)
            keep = (y > 0) | sampled(b.users[cands.rows], cands.items, job.negative_rate)
            w = np.where(y > 0, w, w / job.negative_rate)
            c = cands.select(keep)
            cols = {S.USER: b.users[c.rows].astype(str), S.ITEM: st.vocab[c.items].astype(str),
                    LABEL: y[keep], WEIGHT: w[keep].astype(np.float32),
                    WINDOW: np.full(len(c), window, np.int32), "category": c.category,
                    "brand": c.brand, "title": c.title}
            cols.update({name: c.numeric[:, j] for j, name in enumerate(NUMERIC)})
            yield pa.RecordBatch.from_pydict(cols, schema=rows_schema())


def rows_schema():
    import pyarrow as pa

    return pa.schema([(S.USER, pa.string()), (S.ITEM, pa.string()), (LABEL, pa.float32()),
                      (WEIGHT, pa.float32()), (WINDOW, pa.int32()), ("category", pa.string()),
                      ("brand", pa.string()), ("title", pa.string())]
                     + [(name, pa.float32()) for name in NUMERIC])


def sampled(users: np.ndarray, items: np.ndarray, rate: float) -> np.ndarray:
    """A deterministic Bernoulli(rate) draw per (user, item): the same rows on every run."""
    if rate >= 1.0:
        return np.ones(len(items), dtype=bool)
    import pandas as pd

    h = pd.util.hash_array(np.asarray(users, dtype=object)) ^ (
        items.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    return (h % np.uint64(1_000_000)) < np.uint64(int(rate * 1_000_000))
