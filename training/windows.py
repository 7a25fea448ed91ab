"""The ranker's training rows: candidates as of each label window's start, labelled by what
users did inside the window.

Time line of one night (T = the end of ds), with `ranker.label_windows` = 3:

    ... SASRec's data ... | window 3 | window 2 | window 1 | holdout | T
                      label_start                        split

The ranker learns from each label window with features as of that window's start, is
evaluated on the holdout with features as of the split, and serves with features as of T.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from nightshelf.config import Config
from training import candidates
from training.evaluate import relevant
from training.holdout import item_context
from training.inputs import Night
from training.steps import Steps

log = logging.getLogger(__name__)


def label_start(cfg: Config, split: datetime) -> datetime:
    """Start of the earliest label window: SASRec is fitted on what happened before it."""
    return split - timedelta(days=cfg.ranker.label_windows * cfg.ranker.label_days)


@dataclass
class Window:
    start: datetime
    known: Steps          # every user's steps before `start`
    after: Steps          # rows aligned with `known`: their steps inside the window
    rows: np.ndarray      # rows of `known` of the users who did something in the window


def label_windows(cfg: Config, before: Steps, split: datetime) -> list[Window]:
    """The `ranker.label_windows` consecutive windows before `split`, newest first."""
    out, upto = [], before
    days, excl = cfg.ranker.label_days, cfg.scoring.exclusion_window_days
    for k in range(cfg.ranker.label_windows):
        end, start = split - timedelta(days=k * days), split - timedelta(days=(k + 1) * days)
        if k:
            upto, _ = before.cut(end, excl)
        known, after = upto.cut(start, excl)
        out.append(Window(start, known, after, np.nonzero(after.lengths > 0)[0]))
    return out


def ranker_rows(cfg: Config, night: Night,
                sasrec) -> tuple[candidates.CandidateSet, np.ndarray, np.ndarray, dict]:
    """(candidates, labels, sample weights, sizes) over every label window; one user in two
    windows is two lists (their `rows` differ)."""
    parts, ys, ws, offset, touched = [], [], [], 0, 0
    bs, size = cfg.scoring.batch_size, len(night.vocab)
    for window in label_windows(cfg, night.before, night.split):
        ctx = item_context(cfg, window.known, window.start, night.vocab, night.catalog)
        positives = 0
        for start in range(0, len(window.rows), bs):
            chunk = window.rows[start:start + bs]
            cands = candidates.generate(ctx, window.known.take(chunk), sasrec,
                                        cfg.ranker.candidates)
            after = window.after.take(chunk)
            y, w = candidates.labels(cands, after, size, cfg.events.weights)
            cands.rows = cands.rows + offset + start
            parts.append(cands)
            ys.append(y)
            ws.append(w)
            positives += int(y.sum())
            touched += int(relevant(after, size)[1].sum())
        offset += len(window.rows)
        log.info("ranker: window from %s: %d users, %d positives", window.start.isoformat(),
                 len(window.rows), positives)
    if not offset:
        raise ValueError(f"no user came back in the {cfg.ranker.label_windows} label window(s) "
                         f"before {night.split.isoformat()}: nothing to train the ranker on "
                         f"(land more days or raise ranker.label_days)")
    cands = candidates.concat(parts)
    y, w = np.concatenate(ys), np.concatenate(ws)
    sizes = {"ranker_rows": len(cands), "ranker_users": offset,
             "ranker_positives": int(y.sum()),
             "ranker_candidate_recall": round(float(y.sum()) / max(touched, 1), 4)}
    log.info("ranker: %d candidates, %d positives (candidates hold %.0f%% of what users "
             "touched)", len(cands), int(y.sum()), 100 * sizes["ranker_candidate_recall"])
    return cands, y, w, sizes
