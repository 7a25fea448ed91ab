"""Score every eligible user: top-N items per user, written to the staging area in batches.

Memory stays bounded by `scoring.batch_size` users at a time: logits for a batch, its top-N,
then the rows are streamed to one Parquet file. Never recommended: padding/unknown ids, items
not in tonight's catalog or unavailable, and items the user bought inside the exclusion
window unless the catalog marks them repurchasable.
"""

from __future__ import annotations

import logging
import shutil
import time
from typing import Callable

import numpy as np

from nightshelf import lake
from nightshelf import schema as S
from nightshelf.config import Config
from training import inputs
from training.baselines import ItemKNN
from training.evaluate import NEG, aligned_scorer, masked
from training.gate import ITEM_KNN, POPULARITY
from training.metrics import top_k
from training.tracking import read_record, setup_mlflow, write_record

log = logging.getLogger(__name__)

REASON_HISTORY = 10
VERBS = {S.VIEW: "viewed", S.ADD_TO_CART: "added to cart", S.PURCHASE: "bought",
         S.FAVORITE: "saved"}


def _schema():
    import pyarrow as pa

    return pa.schema([(S.USER, pa.string()), (S.RANK, pa.int32()), (S.ITEM, pa.string()),
                      (S.SCORE, pa.float32()), (S.REASON, pa.string()),
                      (S.MODEL_VERSION, pa.string()), (S.RUN_ID, pa.string())])


Similarity = Callable[[np.ndarray, np.ndarray], np.ndarray]


def reasons(rec_idx: np.ndarray, history: list[str], history_types: list[str],
            vocab: list[str], index: dict[str, int], similarity: Similarity | None,
            catalog: inputs.Catalog) -> list[str]:
    """Why each item: the user's recent item most similar to it (`similarity(recs, history)`
    gives a [recs, history] matrix), else the item's category's popularity."""
    recent = [(i, t) for i, t in zip(history[::-1], history_types[::-1]) if i in index]
    recent = recent[:REASON_HISTORY]
    out = []
    if similarity is None or not recent:
        return [f"popular in {catalog.category.get(vocab[j], 'the shop')}" for j in rec_idx]
    h_idx = np.array([index[i] for i, _ in recent])
    sims = similarity(rec_idx, h_idx)
    position = {}
    for p, (i, _) in enumerate(recent):
        position.setdefault(i, p)  # the most recent time the user touched the item
    for r, j in enumerate(rec_idx):
        best = position.get(vocab[j], int(np.argmax(sims[r])))
        item, etype = recent[best]
        if item != vocab[j] and sims[r, best] <= 0:  # like nothing the user touched
            out.append(f"more from {catalog.category.get(vocab[j], 'the shop')}")
        elif item == vocab[j]:
            out.append(f"you {VERBS.get(etype, 'viewed')} it recently")
        else:
            out.append(f"similar to \"{catalog.title.get(item, item)}\" you "
                       f"{VERBS.get(etype, 'viewed')}")
    return out


def _popularity_scores(cfg: Config, ds: str, vocab: list[str]) -> np.ndarray:
    import pyarrow.parquet as pq

    w = cfg.events.weights
    cols = [f"pop_{t}_7d" for t in S.EVENT_TYPES]
    t = pq.read_table(lake.features(cfg, "items", ds), columns=[S.ITEM, *cols]).to_pydict()
    by_item = {i: sum(w.get(ty, 1.0) * t[f"pop_{ty}_7d"][r] for ty in S.EVENT_TYPES)
               for r, i in enumerate(t[S.ITEM])}
    return np.array([by_item.get(i, 0.0) for i in vocab], dtype=np.float32)


def run(cfg: Config, ds: str) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    gate = read_record(cfg, ds, "gate")
    serving = gate["serving"]
    catalog = inputs.load_catalog(cfg, ds)
    seqs = inputs.load_sequences(cfg, ds)
    n_top = cfg.scoring.top_n
    if serving["kind"] == POPULARITY:
        vocab = [inputs.PAD, inputs.OOV] + sorted(catalog.item_ids)
        pop = _popularity_scores(cfg, ds, vocab)
        score_batch = lambda hist, users: np.tile(pop, (len(hist), 1))  # noqa: E731
        similarity = None
    elif serving["kind"] == ITEM_KNN:
        vocab = [inputs.PAD, inputs.OOV] + inputs.vocabulary(seqs, catalog)
        knn_index = {v: i for i, v in enumerate(vocab)}
        knn = ItemKNN(len(vocab)).fit([[knn_index[i] for i in s] for s in seqs.items])
        score_batch = lambda hist, users: knn.score(  # noqa: E731
            [[knn_index[i] for i in h if i in knn_index] for h in hist])
        similarity = lambda recs, hist: knn.sim[recs][:, hist].toarray()  # noqa: E731
    else:
        from training import candidates, ranker
        from training.gate import load_registered

        setup_mlflow(cfg)
        log.info("score ds=%s: loading %s v%s", ds, gate["model_name"],
                 serving["model_version"])
        rank_model, sasrec_model = load_registered(cfg, gate["model_name"],
                                                   serving["model_version"])
        vocab = [inputs.PAD, inputs.OOV] + inputs.vocabulary(seqs, catalog)
        sasrec = aligned_scorer(sasrec_model, vocab, cfg.model.max_len, cfg.scoring.batch_size)
        ctx = candidates.context(seqs, lake.cutoff(ds), vocab, catalog, cfg.events.weights)
        row = {u: r for r, u in enumerate(seqs.users)}
        score_batch = lambda hist, users: ranker.rank(  # noqa: E731
            rank_model, ctx, [row[u] for u in users], sasrec, cfg.ranker.candidates,
            cfg.scoring.batch_size)
        similarity = lambda recs, hist: ctx.knn.sim[recs][:, hist].toarray()  # noqa: E731
    index = {item: i for i, item in enumerate(vocab)}
    base_mask = inputs.exclusion_mask(vocab, catalog)

    out_dir = lake.staging_recommendations(cfg, ds)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    n_users, n_rows, t0 = len(seqs.users), 0, time.monotonic()
    bs = cfg.scoring.batch_size
    with pq.ParquetWriter(out_dir / "part-00000.parquet", _schema()) as writer:
        for start in range(0, n_users, bs):
            sl = slice(start, start + bs)
            scores = masked(np.asarray(score_batch(seqs.items[sl], seqs.users[sl])),
                            seqs.recent_purchases[sl],
                            index, base_mask, catalog.repurchasable)
            ranked = top_k(scores, n_top)
            cols = {k: [] for k in _schema().names}
            for r, user in enumerate(seqs.users[sl]):
                row_scores = scores[r, ranked[r]]
                keep = ranked[r][row_scores > NEG / 2]
                why = reasons(keep, seqs.items[start + r], seqs.types[start + r], vocab, index,
                              similarity, catalog)
                for rank, (j, reason) in enumerate(zip(keep, why), start=1):
                    cols[S.USER].append(user)
                    cols[S.RANK].append(rank)
                    cols[S.ITEM].append(vocab[j])
                    cols[S.SCORE].append(float(scores[r, j]))
                    cols[S.REASON].append(reason)
                    cols[S.MODEL_VERSION].append(str(serving["model_version"]))
                    cols[S.RUN_ID].append(serving["run_id"])
            writer.write_table(pa.table(cols, schema=_schema()))
            n_rows += len(cols[S.USER])
            done = min(start + bs, n_users)
            log.info("score ds=%s: %d/%d users (%.0f%%), %d rows, %.1fs", ds, done, n_users,
                     100 * done / max(n_users, 1), n_rows, time.monotonic() - t0)
    record = {"ds": ds, "users": n_users, "rows": n_rows, "top_n": n_top,
              "serving": serving, "staging": str(out_dir), "seconds": time.monotonic() - t0}
    write_record(cfg, ds, "score", record)
    return record
