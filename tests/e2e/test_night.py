"""One whole night through the real DAG (`airflow dags test`) on a tiny synthetic shop.

Real Spark (spark-submit through the Spark provider), real GX suites and Data Docs, real
TensorFlow training, a real MLflow SQLite store and registry. Then a night whose raw data
fails its suite must publish nothing and leave the earlier night's lists as they were.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DS = "2017-11-30"  # years before today: a shop runs the nights of its own history
NEXT = (date.fromisoformat(DS) + timedelta(days=1)).isoformat()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    if not (REPO / ".venv-airflow" / "bin" / "airflow").exists():
        pytest.fail("the Airflow environment is missing: run `make install` first")
    return tmp_path_factory.mktemp("night")


@pytest.fixture(scope="module")
def env(home):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NIGHTSHELF", "AIRFLOW"))}
    env.update({
        "NIGHTSHELF_HOME": str(home),
        "NIGHTSHELF_PII_KEY": "e2e-test-key",
        "NIGHTSHELF_RETRY_DELAY_SECONDS": "1",
        "NIGHTSHELF__SHOP__USERS": "300",
        "NIGHTSHELF__SHOP__ITEMS": "80",
        "NIGHTSHELF__SHOP__DAYS": "8",
        "NIGHTSHELF__SHOP__END": DS,
        "NIGHTSHELF__MODEL__EPOCHS": "8",
        "NIGHTSHELF__SPARK__SHUFFLE_PARTITIONS": "2",
    })
    return env


def nightshelf(env, *args, check=True):
    cli = Path(sys.executable).parent / "nightshelf"
    return subprocess.run([str(cli), *args], env=env, check=check, text=True,
                          capture_output=True)


@pytest.fixture(scope="module")
def night(env, home):
    nightshelf(env, "generate")
    nightshelf(env, "bootstrap", "--until", DS)
    proc = nightshelf(env, "night", "--ds", DS, check=False)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    return home


def _config(home):
    from nightshelf.config import load_config

    return load_config(environ={"NIGHTSHELF_HOME": str(home)})


def test_published_lists_satisfy_the_contract(night):
    import pyarrow.parquet as pq

    from nightshelf import lake

    cfg = _config(night)
    out = lake.recommendations(cfg, DS)
    assert (out / "_SUCCESS").exists() and (out / lake.MANIFEST).exists()
    table = pq.read_table([str(p) for p in out.glob("*.parquet")], partitioning=None)
    assert [(f.name, str(f.type)) for f in table.schema] == [
        ("user_id", "string"), ("rank", "int32"), ("item_id", "string"), ("score", "float"),
        ("reason", "string"), ("model_version", "string"), ("run_id", "string")]
    df = table.to_pandas()
    catalog = pq.read_table(lake.clean_catalog(cfg, DS)).to_pandas().set_index("item_id")
    seqs = pq.read_table(lake.features(cfg, "sequences", DS)).to_pandas()
    assert set(df.user_id) == set(seqs.user_id)  # every eligible user
    for user, g in df.groupby("user_id"):
        g = g.sort_values("rank")
        assert list(g["rank"]) == list(range(1, len(g) + 1))
        assert (g.score.diff().dropna() <= 0).all()
        assert g.item_id.is_unique
    assert catalog.loc[df.item_id, "available"].all()
    bought = seqs.set_index("user_id").recent_purchases
    for user, item in zip(df.user_id, df.item_id):
        assert item not in bought[user] or catalog.loc[item, "repurchasable"]
    assert df.reason.str.len().gt(0).all()


def test_every_common_reader_opens_the_published_night_and_the_whole_root(night, spark):
    """A published night is a plain Parquet table: the manifest and the marker beside the
    data are `_`-prefixed, which every reader skips; the root is Hive-partitioned by ds."""
    import duckdb
    import pandas as pd
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    from nightshelf import lake

    cfg = _config(night)
    night_dir, root = lake.recommendations(cfg, DS), lake.recommendations(cfg)
    rows = json.loads(lake.manifest(cfg, DS).read_text())["rows"]
    assert rows > 0
    assert pq.read_table(night_dir).num_rows == rows
    assert len(pd.read_parquet(night_dir)) == rows
    assert spark.read.parquet(str(night_dir)).count() == rows
    whole = pq.read_table(root)
    assert whole.num_rows == rows and set(map(str, whole.column("ds").to_pylist())) == {DS}
    assert pads.dataset(root, format="parquet", partitioning="hive").count_rows() == rows
    assert len(pd.read_parquet(root)) == rows
    by_ds = spark.read.parquet(str(root)).groupBy("ds").count().collect()
    assert [(str(r["ds"]), r["count"]) for r in by_ds] == [(DS, rows)]
    got = duckdb.sql(f"select ds, count(*) from read_parquet('{root}/*/*.parquet', "
                     "hive_partitioning = true) group by ds").fetchall()
    assert [(str(d), n) for d, n in got] == [(DS, rows)]


def test_manifest_counts_add_up(night):
    import pyarrow.parquet as pq

    from nightshelf import lake
    from nightshelf.records import CleanCounts

    cfg = _config(night)
    manifest = json.loads(lake.manifest(cfg, DS).read_text())
    counts = CleanCounts.read(cfg, DS)
    inp = manifest["input"]
    assert inp["rows_in"] == inp["clean"] + inp["duplicates"] + inp["quarantined"]
    keys = ("rows_in", "clean", "duplicates", "quarantined")
    assert inp == {k: getattr(counts, k) for k in keys}
    assert inp["duplicates"] > 0 and inp["quarantined"] > 0  # the shop is dirty on purpose
    rows = sum(pq.read_metadata(p).num_rows
               for p in lake.recommendations(cfg, DS).glob("*.parquet"))
    assert manifest["rows"] == rows
    assert all(v["success"] for v in manifest["validation"].values())
    assert manifest["model_name"] == cfg.ranker.name and manifest["mlflow_run_id"]
    # the shop's first night: no lists of the night before to score yet, and it says so
    assert manifest["served_feedback"]["skipped"].startswith("no lists were published")


def test_mlflow_run_finished_with_metrics_and_a_registered_champion(night):
    import mlflow
    from mlflow import MlflowClient

    from nightshelf import lake

    cfg = _config(night)
    manifest = json.loads(lake.manifest(cfg, DS).read_text())
    mlflow.set_tracking_uri(cfg.tracking_uri)
    client = MlflowClient()
    run = client.get_run(manifest["challenger"]["run_id"])
    assert run.info.status == "FINISHED"
    assert {"ndcg_at_10", "recall_at_10", "popularity.ndcg_at_10", "item_knn.ndcg_at_10",
            "als.ndcg_at_10", "sasrec.ndcg_at_10", "buy_again.ndcg_at_10", "loss",
            "ranker.val_loss"} <= set(run.data.metrics)
    # the night's inputs are the run's datasets, with the fingerprint of what was read
    inputs = {d.dataset.name: d.dataset for d in run.inputs.dataset_inputs}
    assert {f"sequences ds={DS}", f"items ds={DS}"} <= set(inputs)
    assert all(len(d.digest) == 16 for d in inputs.values())
    # the run says what was served and why; the comparison is a table the UI can sort
    note = run.data.tags["mlflow.note.content"]
    assert note.startswith(f"Night {DS}: {cfg.ranker.name} v") and "published lists" in note
    table = json.loads(open(mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="comparison.json")).read())
    assert {"ranker", "buy_again", "als"} <= set(
        row[table["columns"].index("model")] for row in table["data"])
    # a run per model nested under the night's, with the parent's figures
    children = {r.data.tags["model"]: r for r in client.search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")}
    assert {"ranker", "sasrec", "popularity", "item_knn", "buy_again", "als"} <= set(children)
    assert children["ranker"].data.metrics["ndcg_at_10"] == run.data.metrics["ndcg_at_10"]
    assert children["als"].data.metrics["ndcg_at_10"] == run.data.metrics["als.ndcg_at_10"]
    assert len(client.get_metric_history(run.info.run_id, "loss")) >= 2
    assert len(client.get_metric_history(run.info.run_id, "ranker.loss")) >= 2
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {"plots/training_curves.png", "plots/ranker_training_curves.png",
            "plots/metrics_at_k.png"} <= artifacts
    versions = client.search_model_versions(f"name='{cfg.ranker.name}'")
    assert versions and versions[0].run_id == run.info.run_id
    sasrec_version = versions[0].tags["sasrec_version"]
    assert client.get_model_version(cfg.model.name, sasrec_version).run_id == run.info.run_id
    if manifest["challenger"]["promoted"]:
        champ = client.get_model_version_by_alias(cfg.ranker.name, "champion")
        assert str(champ.version) == manifest["model_version"]
    # both registered models carry an input example beside their signature
    from mlflow.models import Model
    for name, version in ((cfg.ranker.name, versions[0].version),
                          (cfg.model.name, sasrec_version)):
        model = Model.load(f"models:/{name}/{version}")
        assert model.saved_input_example_info["type"] in ("ndarray", "json_object"), name
        assert model.signature is not None


def test_the_night_used_item_text_from_the_installed_encoder(night):
    """The context job embedded the vocabulary's titles and their text neighbours; SASRec
    placed the items it never trained on among them; the registered ranker reads the text
    features and the text source, and its candidates reached items by text."""
    from mlflow import MlflowClient

    from nightshelf import lake
    from nightshelf.records import RowsRecord, SasrecRecord
    from training.inputs import load_text, night_vocab
    from training.serve import SETTINGS_TAG

    cfg = _config(night)
    vocab = night_vocab(cfg, DS)
    text = load_text(cfg, DS, vocab)
    assert text.encoder.startswith("wordllama-") and text.vectors.shape == (len(vocab), 256)
    assert text.sim.nnz >= (len(vocab) - 2) * 0.9 * cfg.text.neighbours
    assert list(lake.lake(cfg, "text").glob("wordllama-*.npz"))  # the cache, by content hash
    assert SasrecRecord.read(cfg, DS).sizes["text_placed_items"] >= 0
    client = MlflowClient(tracking_uri=cfg.tracking_uri)
    version = client.search_model_versions(f"name='{cfg.ranker.name}'")[0]
    settings = json.loads(version.tags[SETTINGS_TAG])
    assert {"text_score", "text_sim_recent", "text_sim_last"} <= set(settings["features"])
    assert settings["candidates"]["text"] == cfg.ranker.candidates["text"] > 0
    rows = lake.read_parquet(lake.ranker_rows(cfg, DS, 1), columns=["text_score"])
    assert (rows.column("text_score").to_numpy() > 0).mean() > 0.1
    assert RowsRecord.read(cfg, DS).rows > 0


def test_data_docs_were_built(night):
    from nightshelf import lake

    index = lake.data_docs_index(_config(night))
    assert index.exists() and "recommendations" in index.read_text()


def _rows(folder):
    import pyarrow.parquet as pq

    table = pq.read_table([str(p) for p in sorted(folder.glob("*.parquet"))], partitioning=None)
    return sorted(tuple(r.values()) for r in table.to_pylist())


def test_no_raw_email_or_ip_reaches_the_lake_or_the_lists(night):
    import re

    import pyarrow.parquet as pq

    from nightshelf import lake

    cfg = _config(night)
    landed = "".join(p.read_text(errors="ignore") for p in lake.landing_events(cfg).rglob("*")
                     if p.suffix in (".csv", ".jsonl"))
    assert "@" in landed  # the shop does land e-mails and IPs: the check below means something
    pii = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+|\b\d{1,3}(?:\.\d{1,3}){3}\b")
    files = list(lake.lake(cfg).rglob("*.parquet"))
    assert len(files) > 10
    for path in files:
        table = pq.read_table(path)
        for name in table.column_names:
            if str(table.schema.field(name).type) in ("string", "large_string"):
                found = [v for v in table.column(name).to_pylist() if v and pii.search(v)]
                assert not found, f"{path}: column {name} holds {found[:3]}"
        assert not {"email", "ip"} & set(table.column_names), path


def test_rerunning_the_night_on_a_spark_cluster_publishes_the_same_rows(night, env, tmp_path):
    """The rerun goes to a Spark standalone master and worker on loopback: the night's jobs
    run unchanged there and publish the same lists, row for row, as on local[*]."""
    from mlflow import MlflowClient

    from nightshelf import lake
    from tests.support.spark_cluster import standalone

    cfg = _config(night)
    out = lake.recommendations(cfg, DS)
    first, manifest = _rows(out), json.loads((out / lake.MANIFEST).read_text())
    client = MlflowClient(tracking_uri=cfg.tracking_uri)
    versions = len(client.search_model_versions(f"name='{cfg.ranker.name}'"))
    run_id = manifest["challenger"]["run_id"]
    exp = client.get_run(run_id).info.experiment_id

    def children():
        return sorted(r.info.run_id for r in client.search_runs(
            [exp], f"tags.mlflow.parentRunId = '{run_id}'"))
    before = children()
    with standalone(tmp_path / "spark") as master:
        proc = nightshelf({**env, "NIGHTSHELF__SPARK__MASTER": master}, "night", "--ds", DS,
                          check=False)
        ran = (tmp_path / "spark" / "master.log").read_text()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for job in ("clean", "features", "context", "ranker-rows", "evaluate", "score"):
        assert f"Registering app nightshelf-{job}" in ran, job
    # the job code reached the executors as the job zip (--py-files), fetched per app
    shipped = {p.name for p in (tmp_path / "spark" / "work").glob("app-*/*/nightshelf-jobs-*.zip")}
    assert len(shipped) == 1, shipped
    again = json.loads((out / lake.MANIFEST).read_text())
    assert _rows(out) == first  # every column, row for row
    assert {k: v for k, v in again.items() if k != "created_at"} == {
        k: v for k, v in manifest.items() if k != "created_at"}
    assert len(client.search_model_versions(f"name='{cfg.ranker.name}'")) == versions
    assert children() == before  # the rerun logged into the same per-model runs


def test_a_night_that_fails_validation_publishes_nothing(night, env):
    from nightshelf import lake
    from nightshelf.records import ValidationRecord

    cfg = _config(night)
    before = lake.manifest(cfg, DS).read_text()
    bad = lake.landing_events(cfg, NEXT)
    bad.mkdir(parents=True)
    lines = ["event_id,user_id,item_id,event_type,event_time"]
    lines += [f"x{i},U000001,P00001,hover,{NEXT}T10:00:00Z" for i in range(50)]
    (bad / "events.csv").write_text("\n".join(lines) + "\n")
    (bad / "_SUCCESS").touch()  # the landing is complete: the night starts on it
    proc = nightshelf(env, "night", "--ds", NEXT, check=False)
    assert proc.returncode != 0
    assert "task validate_raw failed" in proc.stderr, proc.stderr[-2000:]
    assert not lake.recommendations(cfg, NEXT).exists()
    assert lake.manifest(cfg, DS).read_text() == before
    assert not ValidationRecord.read(cfg, NEXT, "raw").success
