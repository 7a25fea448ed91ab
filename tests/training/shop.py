"""A toy shop for the training tests: three users, five items, hand-checkable."""

from datetime import datetime

import numpy as np
import pyarrow as pa

from nightshelf import schema as S
from training import context
from training.baselines import ItemKNN
from training.context import Catalog
from training.inputs import OOV, PAD
from training.steps import OOV as OOV_INDEX
from training.steps import Steps, from_arrow

AT = datetime(2026, 11, 10)
ITEMS = ["a", "b", "c", "d", "e"]
VOCAB = np.array([PAD, OOV] + ITEMS, dtype=object)
WEIGHTS = {"view": 1.0, "purchase": 5.0}
CATALOG = Catalog(item_ids=ITEMS, title={i: f"Blue mug {i}" for i in ITEMS},
                  category={"a": "Home", "b": "Home", "c": "Home", "d": "Sports", "e": "Sports"},
                  available=set(ITEMS) - {"e"}, repurchasable={"b"},
                  brand={i: "Acme" for i in ITEMS}, price={i: 10.0 for i in ITEMS})


def sequences(users, items, types, days, bought) -> pa.Table:
    """A sequences table: days are day-of-November at noon."""
    times = [[datetime(2026, 11, d, 12) for d in ds] for ds in days]
    strings = pa.list_(pa.string())
    return pa.table({S.USER: users, S.SEQ_ITEMS: pa.array(items, strings),
                     S.SEQ_TYPES: pa.array(types, strings),
                     S.SEQ_TIMES: pa.array(times, pa.list_(pa.timestamp("us"))),
                     S.RECENT_PURCHASES: pa.array(bought, strings)})


def steps(users, items, types, days, bought, vocab=VOCAB) -> Steps:
    return from_arrow(sequences(users, items, types, days, bought),
                      pa.array(list(vocab), pa.string()))


SEQS = steps(["u1", "u2", "u3"], [["a", "b", "a"], ["a", "c"], ["d", "b"]],
             [["view", "purchase", "view"], ["view", "purchase"], ["view", "view"]],
             [[1, 2, 9], [3, 4], [5, 6]], [["b"], ["c"], []])


def context_of(seqs: Steps = SEQS, vocab=VOCAB):
    """The item context of `seqs` as of AT, co-visitation fitted on them (NumPy reference)."""
    valid = seqs.items > OOV_INDEX
    knn = ItemKNN(len(vocab)).fit_pairs(seqs.step_rows()[valid],
                                        seqs.items[valid].astype(np.int64), len(seqs))
    return context.build(seqs, AT, vocab, CATALOG, WEIGHTS, 7, knn.sim)
