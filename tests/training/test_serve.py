"""Serving: every kind the gate can choose, through the worker function the score job maps
over users, with a ranker registered under other settings than tonight's config."""

import dataclasses
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nightshelf import lake
from nightshelf import schema as S
from tests.training.shop import sequences

pytestmark = [pytest.mark.spark, pytest.mark.slow]
keras = pytest.importorskip("keras")

DS = "2026-11-09"
ITEMS = [f"i{k}" for k in range(12)]


def _catalog_table():
    return pa.table({S.ITEM: ITEMS, S.TITLE: [f"Mug {i}" for i in ITEMS],
                     S.CATEGORY: ["Home" if k < 6 else "Sports" for k in range(12)],
                     S.BRAND: ["Acme"] * 12, S.PRICE: [10.0] * 12,
                     S.AVAILABLE: [k != 11 for k in range(12)],
                     S.REPURCHASABLE: [False] * 12})


@pytest.fixture(scope="module")
def night(tmp_path_factory, spark):
    """A home with tonight's features and context (the real context job), and a ranker
    registered with max_len 6 and 4 candidates per source."""
    import mlflow
    from mlflow import MlflowClient

    from jobs import context as context_job
    from nightshelf.config import load_config
    from nightshelf.tracking import SASREC_TAG, setup_mlflow
    from training import candidate_set as CS
    from training import ranker
    from training.model import build_sasrec, scoring_model
    from training.serve import FIRST_FEATURES, SETTINGS_TAG, Settings

    home = tmp_path_factory.mktemp("serve")
    cfg = load_config(environ={"NIGHTSHELF_HOME": str(home)})
    rng = np.random.default_rng(0)
    users = [f"u{k}" for k in range(40)]
    items = [[ITEMS[(k + j) % 12] for j in range(int(rng.integers(2, 7)))]
             for k in range(40)]
    types = [["purchase" if j == 0 else "view" for j in range(len(i))] for i in items]
    days = [list(range(1, len(i) + 1)) for i in items]
    bought = [[i[0]] for i in items]
    for table, data in (("sequences", sequences(users, items, types, days, bought)),
                        ("items", _catalog_table())):
        lake.features(cfg, table, DS).mkdir(parents=True)
        pq.write_table(data, lake.features(cfg, table, DS) / "part-00000.parquet")
    context_job.run(spark, cfg, DS)

    setup_mlflow(cfg)
    sasrec = scoring_model(build_sasrec(len(ITEMS) + 2, 6, 8, 1, 1, 0.0), sorted(ITEMS))
    toy = CS.CandidateSet(rows=np.arange(64) // 8, items=np.zeros(64, np.int64),
                          numeric=rng.normal(size=(64, len(FIRST_FEATURES))).astype(np.float32),
                          category=np.array(["Home"] * 64), brand=np.array(["Acme"] * 64),
                          title=np.array(["Mug"] * 64))
    small = dataclasses.replace(cfg.ranker, epochs=1)
    model, _ = ranker.fit(toy, (rng.random(64) < 0.3).astype(np.float32), np.ones(64), small, 0)
    registered = Settings(max_len=6, candidates={"sasrec": 4, "covisit": 4, "popularity": 4,
                                                 "repeat": 4},
                          weights={"view": 1.0, "purchase": 2.0})
    with mlflow.start_run():
        s_info = mlflow.keras.log_model(sasrec, name="sasrec",
                                        registered_model_name=cfg.model.name)
        r_info = mlflow.keras.log_model(model, name="model", registered_model_name=cfg.ranker.name)
    client = MlflowClient()
    version = str(r_info.registered_model_version)
    client.set_model_version_tag(cfg.ranker.name, version, SASREC_TAG,
                                 str(s_info.registered_model_version))
    # as a version registered before the feature list was logged with it: its numeric input
    # is the first 24 features, and its tag does not name them
    old_tag = {k: v for k, v in json.loads(registered.to_json()).items() if k != "features"}
    client.set_model_version_tag(cfg.ranker.name, version, SETTINGS_TAG, json.dumps(old_tag))
    # tonight's config differs from what the ranker was trained with
    tonight = dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, max_len=50),
        ranker=dataclasses.replace(cfg.ranker, candidates={"popularity": 1}),
        events=dataclasses.replace(cfg.events, weights={"view": 1.0, "purchase": 9.0}))
    return tonight, version, registered, sequences(users, items, types, days, bought)


def _serve(job, table) -> pa.Table:
    from training import partitions

    return pa.Table.from_batches(list(partitions.score(job, table.to_batches(max_chunksize=16))))


@pytest.mark.parametrize("kind", ["ranker", "item_knn", "buy_again", "popularity"])
def test_each_serving_kind_publishes_full_masked_lists(night, kind):
    from training import partitions
    from training.serve import load_registered

    cfg, version, registered, table = night
    rankers = (("ranker", cfg.ranker.name, version),) if kind == "ranker" else ()
    job = partitions.Job(cfg, DS, "cutoff", rankers=rankers,
                         baselines=() if rankers else (kind,), run_id="run-1")
    out = _serve(job, table).to_pandas()
    assert set(out.user_id) == set(table.column(S.USER).to_pylist())
    bought = dict(zip(table.column(S.USER).to_pylist(),
                      table.column(S.RECENT_PURCHASES).to_pylist()))
    for user, g in out.groupby("user_id"):
        assert list(g["rank"]) == list(range(1, len(g) + 1))
        assert (np.diff(g.score) <= 0).all() and g.item_id.is_unique
        assert "i11" not in set(g.item_id)            # unavailable
        assert not set(g.item_id) & set(bought[user])  # bought, not repurchasable
        assert len(g) == min(cfg.scoring.top_n, len(set(ITEMS[:11]) - set(bought[user])))
    assert set(out.model_version) == {version if rankers else f"baseline:{kind}"}
    assert out.reason.str.len().gt(0).all()
    if rankers:  # served with what it was registered with (SASRec takes 6 steps, not 50)
        assert load_registered(cfg, cfg.ranker.name, version)[2] == registered
