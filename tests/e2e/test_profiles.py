"""The night's training and holdout evaluation on each shop profile that is not the default
one: a grocery export (purchases only, weekly baskets of repeats, a catalog mostly never
bought, no first-seen dates or repurchasable flags) and a marketplace (views-heavy, rare
purchases, many new items a day).

The real jobs run in order, as the DAG runs them (spark-submit for the Spark jobs, the CLI
for training and the gate), on a small shop of each profile: clean, features, context,
SASRec, the ranker's rows, the ranker, the evaluation of every model and the gate.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DS = "2026-11-22"
NEXT = "2026-11-23"
BIN = Path(sys.executable).parent


def run(env, *cmd):
    proc = subprocess.run([str(c) for c in cmd], env=env, text=True, capture_output=True,
                          cwd=REPO)
    assert proc.returncode == 0, " ".join(map(str, cmd)) + "\n" + proc.stderr[-5000:]


@pytest.fixture(scope="module", params=["grocery", "marketplace"])
def night(request, tmp_path_factory):
    home = tmp_path_factory.mktemp(request.param)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NIGHTSHELF", "AIRFLOW"))}
    env.update({"NIGHTSHELF_HOME": str(home), "NIGHTSHELF_PII_KEY": "profile-test-key",
                "NIGHTSHELF__SHOP__PROFILE": request.param,
                "NIGHTSHELF__SHOP__USERS": "400", "NIGHTSHELF__SHOP__ITEMS": "60",
                "NIGHTSHELF__SHOP__DAYS": "21",
                "NIGHTSHELF__MODEL__EPOCHS": "6", "NIGHTSHELF__RANKER__EPOCHS": "6",
                "NIGHTSHELF__SPARK__SHUFFLE_PARTITIONS": "2",
                "PYSPARK_PYTHON": sys.executable, "TF_CPP_MIN_LOG_LEVEL": "2",
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"})
    ns = BIN / "nightshelf"
    run(env, ns, "generate")
    run(env, ns, "bootstrap", "--until", NEXT)  # every landed day, the night's own included
    submit = [BIN / "spark-submit", "--master", "local[2]", "--conf", "spark.log.level=WARN"]
    for step in ("features", "context", "train", "ranker_rows", "train-ranker", "evaluate",
                 "gate"):
        if step in ("train", "train-ranker", "gate"):
            run(env, ns, step, "--ds", DS)
        else:
            run(env, *submit, REPO / "jobs" / f"{step}.py", "--ds", DS)
    from nightshelf.config import load_config

    return request.param, load_config(environ=env)


def test_every_model_is_evaluated_and_the_gate_never_serves_a_collapsed_list(night):
    from nightshelf.records import EvaluationRecord, GateRecord

    profile, cfg = night
    ev, gate = EvaluationRecord.read(cfg, DS), GateRecord.read(cfg, DS)
    assert {"ranker", "sasrec", "popularity", "item_knn", "buy_again", "als"} <= set(ev.reports)
    users = ev.reports["ranker"]["users"]
    assert users > 20 and all(r["users"] == users for r in ev.reports.values())
    ranker = ev.reports["ranker"]
    if gate.promoted:
        assert ranker["possible_coverage"] >= cfg.gate.min_coverage
        best = max(r["ndcg@10"] for n, r in ev.reports.items() if n not in ("ranker", "sasrec"))
        assert ranker["ndcg@10"] > best
    else:
        assert gate.reason and gate.serving.kind != "model"
    # the ranker's lists did not collapse onto a few items
    assert ranker["distinct_items"] >= 20, (profile, ranker)


def test_grocery_learns_what_is_rebought_and_keeps_the_vocabulary_to_what_was_touched(night):
    import numpy as np

    from training import inputs

    profile, cfg = night
    if profile != "grocery":
        pytest.skip("grocery only: its catalog has no repurchasable flags to learn")
    vocab = inputs.night_vocab(cfg, DS)
    catalog = inputs.load_catalog(cfg, DS)
    # the catalog is silent on rebuying: the night learned it from the purchases
    assert not catalog.repurchasable and not catalog.not_repurchasable
    ctx = inputs.load_context(cfg, DS, "cutoff", vocab, catalog)
    assert ctx.repurchasable[2:].mean() > 0.2
    # most of a grocery catalog is never bought; the vocabulary keeps what was touched
    assert len(vocab) - 2 < 0.7 * len(catalog.item_ids)
    assert (ctx.item_users[2:] > 0).all()
    assert np.isfinite(ctx.rebuy_days).all() and (ctx.rebuy_days[ctx.repurchasable] > 0).any()
