"""Quality benchmark of the pipeline's own sequence model on a public data set.

Input: a file in the `user item item ...` sequence format (items in time order), e.g.
`../shared/data/amazon_beauty/Beauty.txt`. Protocol, the standard one for sequential
recommendation: leave-one-out per user (last item = test, second to last = validation,
the rest = training), full ranking over every item with the user's own history masked,
HR@K and NDCG@K averaged over all users. The model, its training loop and its loss are the
ones the nightly DAG uses (`training.model`, `training.fit`).

    python -m training.bench --data ../shared/data/amazon_beauty/Beauty.txt \
        --out bench/results/quality-beauty.json --seeds 13 14 15

Seeds run one per process can be summarised afterwards (same data, settings and attributes):

    python -m training.bench --combine bench/results/quality-beauty-seed1{3,4,5}.json \
        --out bench/results/quality-beauty.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from nightshelf.logs import setup_logging
from training import fit
from training.baselines import ItemKNN
from training.inputs import pad_left
from training.model import build_sasrec
from training.text import encoder_name

log = logging.getLogger("nightshelf.bench")


@dataclass(frozen=True)
class BenchConfig:
    max_len: int = 50
    dim: int = 64
    blocks: int = 2
    heads: int = 1
    dropout: float = 0.5
    learning_rate: float = 0.001
    batch_size: int = 128
    epochs: int = 200
    patience: int = 5          # validations without improvement
    eval_every: int = 2
    negatives: int = 0         # 0: full softmax; > 0: sampled softmax with logQ correction
    negative_alpha: float = 0.75
    ff_mult: int = 1           # feed-forward width in multiples of dim
    plateau_decay: float = 0.5  # learning rate x this after a validation without improvement
    average_last: int = 0      # > 1: also validate the mean weights of the last so many
    max_minutes: float = 24.0
    # after training, SASRec's logits + w x item-kNN's scores for each w of this comma list
    # (0 included), w chosen on validation NDCG@10; "" scores SASRec alone
    knn_blend: str = ""
    # 1: training rows fill their left padding with earlier copies of the sequence, each
    # followed by a padding step (repeated padding, Dang et al., RecSys 2024): more targets
    # per row at no cost per step; 0: plain left padding. Validation and test inputs are
    # padded as usual. On Beauty (seed 13, full softmax) it learned far more slowly:
    # validation NDCG@10 0.0419 after 24 minutes against 0.0752 without it (README).
    repeat_pad: int = 0
    # > 1: so many SASRecs from different initialisations (the first with the run's own
    # seed), each trained within max_minutes / members, scored by the mean of their logits
    # (the mean of their log-softmax, as rankings go); the validation figure is the mean's
    members: int = 1


def read_sequences(path: Path) -> tuple[list[list[int]], list[str]]:
    """Sequences as vocabulary indices (0 is padding) and the vocabulary itself."""
    raw = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if len(parts) < 2:
            raise ValueError(f"{path}:{n}: expected `user item item ...`, got {line!r}")
        raw.append(parts[1:])
    vocab = [""] + sorted({i for s in raw for i in s}, key=lambda v: (len(v), v))
    index = {v: i for i, v in enumerate(vocab)}
    return [[index[i] for i in s] for s in raw], vocab


def read_attributes(path: Path, vocab: list[str], cap: int = 8) -> tuple[np.ndarray, dict]:
    """`{item_id: [attribute ids]}` (JSON, ids as the sequence file spells them) -> an
    [len(vocab), k] table of attribute indices per vocabulary item (1-based, 0 = none; at
    most `cap` per item, in file order) and a summary of what was used."""
    raw = json.loads(path.read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object {{item_id: [attribute ids]}}")
    index = {v: i for i, v in enumerate(vocab)}
    names: dict[str, int] = {}
    rows: dict[int, list[int]] = {}
    for item, attrs in raw.items():
        if str(item) not in index:
            continue  # an item no sequence has
        if not isinstance(attrs, list):
            raise ValueError(f"{path}: item {item!r}: expected a list of attribute ids, "
                             f"got {attrs!r}")
        ids = [names.setdefault(str(a), len(names) + 1) for a in dict.fromkeys(attrs)][:cap]
        if ids:
            rows[index[str(item)]] = ids
    k = max((len(v) for v in rows.values()), default=0)
    table = np.zeros((len(vocab), max(k, 1)), np.int32)
    for i, ids in rows.items():
        table[i, :len(ids)] = ids
    return table, {"file": str(path), "attribute_ids": len(names),
                   "items_with_attributes": len(rows), "items": len(vocab) - 1,
                   "per_item_max": k}


def leave_one_out(seqs: list[list[int]]):
    """(train sequences, validation (input, target), test (input, target))."""
    usable = [s for s in seqs if len(s) >= 3]
    train = [s[:-2] for s in usable]
    val = ([s[:-2] for s in usable], np.array([s[-2] for s in usable]))
    test = ([s[:-1] for s in usable], np.array([s[-1] for s in usable]))
    return train, val, test, len(seqs) - len(usable)


def repeated(seq: list[int], n: int) -> list[int]:
    """The last `n` steps of `... seq 0 seq 0 seq` (0: padding, which attention skips and
    no loss is taken on); `seq` alone if it is that long already."""
    out = list(seq)
    while len(out) < n:
        out = list(seq) + [0] + out
    return out[-n:]


def training_arrays(train: list[list[int]], max_len: int, repeat_pad: bool = False):
    rows = [s for s in train if len(s) >= 2]
    if repeat_pad:
        rows = [repeated(s, max_len + 1) for s in rows]
    xs = [s[:-1] for s in rows]
    ys = [s[1:] for s in rows]
    x, y = pad_left(xs, max_len), pad_left(ys, max_len)
    return x, y, (y > 0).astype(np.float32)


def sasrec_scorer(model, max_len: int):
    """histories -> [n, vocab] scores after the last position."""
    return lambda chunk: np.asarray(model(pad_left(chunk, max_len), training=False,
                                          last_only=True))


def full_ranking(score, inputs: list[list[int]], targets: np.ndarray, ks=(10, 20),
                 batch_size: int = 1024) -> dict:
    """HR@K and NDCG@K of each target among all items, the user's history masked.

    `score` maps a list of histories to a [n, vocab] score matrix (model or baseline).
    """
    ranks = np.empty(len(inputs), dtype=np.int64)
    for start in range(0, len(inputs), batch_size):
        chunk = inputs[start:start + batch_size]
        scores = np.array(score(chunk), dtype=np.float32, copy=True)
        scores[:, 0] = -np.inf
        for r, hist in enumerate(chunk):
            scores[r, hist] = -np.inf
        t = targets[start:start + batch_size]
        target_scores = scores[np.arange(len(chunk)), t]
        ranks[start:start + len(chunk)] = (scores > target_scores[:, None]).sum(axis=1)
    out = {}
    for k in ks:
        hit = ranks < k
        out[f"hr@{k}"] = float(hit.mean())
        out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2), 0.0).mean())
    out["mrr"] = float((1.0 / (ranks + 1)).mean())
    return out


def baselines(seqs, n_items: int) -> dict[str, dict]:
    """Popularity and item-kNN under the same protocol (fitted on the training part)."""
    train, _, (test_in, test_t), _ = leave_one_out(seqs)
    pop = np.bincount(np.concatenate([np.array(s) for s in train]), minlength=n_items)
    knn = ItemKNN(n_items).fit(train)
    out = {}
    for name, scorer in (("popularity", lambda h: np.tile(pop.astype(np.float32), (len(h), 1))),
                         ("item_knn", knn.score)):
        out[name] = full_ranking(scorer, test_in, test_t)
    return out


def run_once(seqs, n_items: int, cfg: BenchConfig, seed: int,
             attributes: np.ndarray | None = None) -> dict:
    train, (val_in, val_t), (test_in, test_t), dropped = leave_one_out(seqs)
    x, y, w = training_arrays(train, cfg.max_len, bool(cfg.repeat_pad))
    t0 = time.monotonic()
    scorers, members = [], []
    for m in range(max(cfg.members, 1)):
        member_seed = seed if m == 0 else seed * 1000 + m
        deadline = t0 + cfg.max_minutes * 60 * (m + 1) / max(cfg.members, 1)
        scorers.append(train_member(x, y, w, n_items, cfg, member_seed, deadline, attributes,
                                    (val_in, val_t)))
        if cfg.members > 1:
            members.append({"seed": member_seed,
                            "val_ndcg@10": full_ranking(scorers[-1], val_in, val_t)["ndcg@10"],
                            "test": full_ranking(scorers[-1], test_in, test_t)})
            log.info("seed %d member %d (seed %d): val ndcg@10=%.4f test ndcg@10=%.4f", seed,
                     m, member_seed, members[-1]["val_ndcg@10"], members[-1]["test"]["ndcg@10"])
    train_seconds = time.monotonic() - t0
    scorer = scorers[0] if len(scorers) == 1 else (
        lambda chunk: np.mean([f(chunk) for f in scorers], axis=0))
    blend = {"members": members} if members else {}
    if cfg.knn_blend:
        scorer, knn = knn_blended(scorer, n_items, train, (val_in, val_t), (test_in, test_t),
                                  [float(v) for v in cfg.knn_blend.split(",")], seed)
        blend.update(knn)
    test = full_ranking(scorer, test_in, test_t)
    val = full_ranking(scorer, val_in, val_t)
    return {"seed": seed, **test, "val_ndcg@10": val["ndcg@10"], "train_seconds": train_seconds,
            "users": len(test_in), "users_dropped_short": dropped, **blend}


def train_member(x, y, w, n_items: int, cfg: BenchConfig, seed: int, deadline: float,
                 attributes: np.ndarray | None, val) -> Callable:
    """One SASRec trained with early stopping on validation NDCG@10 until `deadline`; its
    scorer (histories -> [n, vocab] logits)."""
    import keras

    keras.utils.set_random_seed(seed)
    model = build_sasrec(n_items, cfg.max_len, cfg.dim, cfg.blocks, cfg.heads, cfg.dropout,
                         attributes, cfg.ff_mult)
    scorer = sasrec_scorer(model, cfg.max_len)
    t0 = time.monotonic()

    def validate(epoch: int) -> float:
        return full_ranking(scorer, *val)["ndcg@10"]

    def on_epoch(epoch: int, logs: dict) -> None:
        val = f" val ndcg@10={logs['val']:.4f}" if "val" in logs else ""
        if "val_averaged" in logs:
            val += f" (averaged weights {logs['val_averaged']:.4f})"
        if "learning_rate" in logs:
            val += f" learning rate now {logs['learning_rate']:.2g}"
        log.info("seed %d epoch %d loss=%.4f%s (%.1fs, %.1f min in all)", seed, epoch,
                 logs["loss"], val, logs["epoch_seconds"], (time.monotonic() - t0) / 60)

    fit.train(model, x, y, w, epochs=cfg.epochs, batch_size=cfg.batch_size,
              learning_rate=cfg.learning_rate, seed=seed, validate=validate,
              validate_every=cfg.eval_every, patience=cfg.patience, deadline=deadline,
              on_epoch=on_epoch, negatives=cfg.negatives, negative_alpha=cfg.negative_alpha,
              plateau_decay=cfg.plateau_decay, average_last=cfg.average_last)
    return scorer


def knn_blended(scorer, n_items: int, train: list[list[int]], val, test,
                weights: list[float], seed: int):
    """The scorer `logits + w x item-kNN scores` (item-kNN fitted on the training part, as
    its baseline) for the w of `weights` with the best validation NDCG@10 (0: SASRec alone,
    always tried); and a record of every w's validation figure and SASRec's own test figure."""
    knn = ItemKNN(n_items).fit(train)

    def blended(w: float):
        return scorer if w == 0 else (lambda chunk: scorer(chunk) + w * knn.score(chunk))

    weights = sorted(set(weights) | {0.0})
    val_ndcg = []
    for w in weights:
        val_ndcg.append(full_ranking(blended(w), *val)["ndcg@10"])
        log.info("seed %d: SASRec + %.3g x item-kNN: val ndcg@10=%.4f", seed, w, val_ndcg[-1])
    chosen = weights[int(np.argmax(val_ndcg))]
    alone = full_ranking(scorer, *test)
    log.info("seed %d: blend weight %.3g chosen on validation; SASRec alone test ndcg@10=%.4f "
             "hr@10=%.4f", seed, chosen, alone["ndcg@10"], alone["hr@10"])
    return blended(chosen), {"knn_blend": {"weights": weights, "val_ndcg@10": val_ndcg,
                                           "chosen": chosen, "sasrec_alone": alone}}


KEYS = ["hr@10", "ndcg@10", "hr@20", "ndcg@20", "mrr", "train_seconds"]


def summary(runs: list[dict]) -> dict:
    """Mean of each metric over the runs, and its population std under `std`."""
    return {**{k: float(np.mean([r[k] for r in runs])) for k in KEYS},
            "std": {k: float(np.std([r[k] for r in runs])) for k in KEYS}}


def combine(paths: list[Path]) -> dict:
    """One result from per-seed results of the same benchmark: their runs, mean and std, the
    largest peak RSS. Results of other data, settings or attributes are refused."""
    parts = [json.loads(p.read_text()) for p in paths]
    first = parts[0]
    for p, r in zip(paths[1:], parts[1:]):
        differs = [k for k in ("data", "attributes", "model") if r.get(k) != first.get(k)]
        # a setting added since a file was written is compared only where both name it
        shared = set(r["config"]) & set(first["config"])
        if any(r["config"][k] != first["config"][k] for k in shared):
            differs.append("config")
        if differs:
            raise SystemExit(f"{p}: not the same benchmark as {paths[0]} ({', '.join(differs)} "
                             "differ); combine only seeds of one setting")
    runs = [run for r in parts for run in r["runs"]]
    seeds = [run["seed"] for run in runs]
    if len(set(seeds)) < len(seeds):
        raise SystemExit(f"seeds {seeds}: a seed appears twice among {[str(p) for p in paths]}")
    return {**first, **summary(runs), "runs": runs,
            "peak_rss_mb": max(r["peak_rss_mb"] for r in parts),
            "combined_from": [str(p) for p in paths]}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--combine", type=Path, nargs="+",
                   help="per-seed result files to summarise into --out (no training)")
    p.add_argument("--data", type=Path)
    p.add_argument("--attrs", type=Path,
                   help="item attributes JSON {item_id: [attribute ids]}: fused into SASRec's "
                        "item representations")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--seeds", type=int, nargs="+", default=[13])
    for f, default in asdict(BenchConfig()).items():
        p.add_argument(f"--{f.replace('_', '-')}", type=type(default), default=default)
    a = p.parse_args(argv)
    setup_logging()
    if a.combine:
        result = combine(a.combine)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=2))
        log.info("%s: HR@10 %.4f ± %.4f NDCG@10 %.4f ± %.4f over seeds %s -> %s",
                 result["dataset"], result["hr@10"], result["std"]["hr@10"], result["ndcg@10"],
                 result["std"]["ndcg@10"], [r["seed"] for r in result["runs"]], a.out)
        return
    if a.data is None:
        p.error("--data is required (or --combine)")
    cfg = BenchConfig(**{f: getattr(a, f) for f in asdict(BenchConfig())})
    seqs, vocab = read_sequences(a.data)
    log.info("%s: %d users, %d items, %d interactions", a.data.name, len(seqs), len(vocab) - 1,
             sum(map(len, seqs)))
    base = baselines(seqs, len(vocab))
    for name, rep in base.items():
        log.info("baseline %s: HR@10 %.4f NDCG@10 %.4f", name, rep["hr@10"], rep["ndcg@10"])
    table, attrs = read_attributes(a.attrs, vocab) if a.attrs else (None, None)
    if attrs:
        log.info("attributes: %d ids on %d of %d items (up to %d each) from %s",
                 attrs["attribute_ids"], attrs["items_with_attributes"], attrs["items"],
                 attrs["per_item_max"], a.attrs)
    runs = [run_once(seqs, len(vocab), cfg, s, table) for s in a.seeds]
    result = {
        "dataset": a.data.stem, "data": str(a.data), "protocol":
            "leave-one-out, full ranking over all items, history masked, all users",
        **summary(runs),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "runs": runs, "baselines": base, "config": asdict(cfg),
        "model": "sasrec (training.model), " + (
            f"sampled softmax, {cfg.negatives} logQ-corrected negatives" if cfg.negatives
            else "full softmax") + (", item attributes fused" if attrs else "")
            + (", item-kNN blended (weight chosen on validation)" if cfg.knn_blend else "")
            + (", repeated padding in training" if cfg.repeat_pad else "")
            + (f", mean of {cfg.members} members' logits" if cfg.members > 1 else ""),
        # what the item side used: the attribute file (None: ids only), and no text encoder,
        # as a sequence file has no item text (the nightly pipeline's is `text_encoder`)
        "attributes": attrs, "text_encoder": None,
        "pipeline_text_encoder": encoder_name(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2))
    log.info("%s: HR@10 %.4f NDCG@10 %.4f (mean of %d seeds), %.0fs per seed -> %s",
             result["dataset"], result["hr@10"], result["ndcg@10"], len(runs),
             result["train_seconds"], a.out)


if __name__ == "__main__":
    main()
