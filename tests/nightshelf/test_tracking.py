"""MLflow set-up and logging helpers on a real (SQLite) MLflow store."""

from __future__ import annotations

import pytest

from nightshelf.config import load_config

pytestmark = pytest.mark.slow


def test_each_model_gets_a_nested_run_and_a_rerun_logs_into_the_same_ones(tmp_path):
    import mlflow
    from mlflow import MlflowClient

    from nightshelf.tracking import log_model_runs, setup_mlflow

    cfg = load_config(environ={"NIGHTSHELF_HOME": str(tmp_path)})
    exp = setup_mlflow(cfg)
    reports = {"ranker": {"ndcg@10": 0.31, "users": 40},
               "popularity": {"ndcg@10": 0.12, "users": 40}}
    with mlflow.start_run(run_name="night-2026-11-22") as parent:
        first = log_model_runs(reports, {"ds": "2026-11-22", "stage": "evaluate"})
    with mlflow.start_run(run_id=parent.info.run_id):  # the night rerun: same children
        again = log_model_runs({**reports, "ranker": {"ndcg@10": 0.33, "users": 40}},
                               {"ds": "2026-11-22", "stage": "evaluate"})
    assert first == again and set(first) == {"ranker", "popularity"}
    client = MlflowClient()
    children = client.search_runs(
        [exp], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == 2
    by_model = {r.data.tags["model"]: r for r in children}
    assert by_model["ranker"].info.run_name == "ranker"
    assert by_model["ranker"].data.metrics == {"ndcg_at_10": 0.33, "users": 40.0}
    assert by_model["popularity"].data.metrics["ndcg_at_10"] == 0.12
    assert by_model["popularity"].data.tags["ds"] == "2026-11-22"
    assert all(r.info.status == "FINISHED" for r in children)


def test_a_local_store_gets_an_absolute_artifact_root_in_the_home(tmp_path):
    """(On a tracking server the server's own proxied store is used instead: checked against
    a real server in tests/integration.)"""
    import mlflow

    from nightshelf.tracking import setup_mlflow

    cfg = load_config(environ={"NIGHTSHELF_HOME": str(tmp_path)})
    setup_mlflow(cfg)
    exp = mlflow.get_experiment_by_name(cfg.mlflow.experiment)
    assert exp.artifact_location == cfg.artifact_root.as_uri()


def test_a_keras_model_is_logged_with_its_input_example(tmp_path):
    """`log_keras_model` works around MLflow 3.17's keras flavor (mlflow/mlflow#16183): the
    example is saved with the model, loads back, and the model still loads and predicts."""
    import keras
    import mlflow
    import numpy as np
    from mlflow.models import Model, infer_signature

    from nightshelf.tracking import log_keras_model, setup_mlflow

    setup_mlflow(load_config(environ={"NIGHTSHELF_HOME": str(tmp_path)}))
    inputs = {"a": keras.Input((3,), name="a"), "b": keras.Input((1,), name="b")}
    model = keras.Model(inputs, keras.layers.Dense(1)(
        keras.layers.Concatenate()([inputs["a"], inputs["b"]])))
    example = {"a": np.zeros((2, 3), np.float32), "b": np.ones((2, 1), np.float32)}
    with mlflow.start_run():
        info = log_keras_model(model, "model", example, registered_model_name="tiny",
                               signature=infer_signature(example, model.predict(example)),
                               pip_requirements=[f"keras=={keras.__version__}"])
    assert info.saved_input_example_info["type"] == "ndarray"
    local = mlflow.artifacts.download_artifacts(info.model_uri)
    back = Model.load(info.model_uri).load_input_example(local)
    assert np.array_equal(back["a"], example["a"]) and np.array_equal(back["b"], example["b"])
    loaded = mlflow.keras.load_model("models:/tiny/1")
    assert loaded.predict(example, verbose=0).shape == (2, 1)
