"""MLflow set-up shared by every task that logs to or loads from the tracking server."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from nightshelf.config import Config

log = logging.getLogger(__name__)

CHAMPION = "champion"
SASREC_TAG = "sasrec_version"  # on a ranker version: the SASRec version it takes scores from


def setup_mlflow(cfg: Config) -> str:
    """Point MLflow at the configured store; create the experiment (on a local store with an
    absolute artifact root under the home, on a tracking server with the server's own).

    Returns the experiment id.
    """
    import mlflow

    (cfg.home / "mlflow").mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(cfg.tracking_uri)
    exp = mlflow.get_experiment_by_name(cfg.mlflow.experiment)
    if exp is None and cfg.tracking_uri.startswith(("http://", "https://")):
        # a tracking server: artifacts go where it says (--serve-artifacts proxies them)
        exp_id = mlflow.create_experiment(cfg.mlflow.experiment)
    elif exp is None:
        cfg.artifact_root.mkdir(parents=True, exist_ok=True)
        exp_id = mlflow.create_experiment(cfg.mlflow.experiment,
                                          artifact_location=cfg.artifact_root.as_uri())
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def log_datasets(folders: dict[str, Path], digest: str, context: str = "training") -> None:
    """Log each named folder (a night's input table) as an MLflow dataset input of the active
    run: its URI as the source and `digest` (the fingerprint of what was read) as its
    digest, so the UI shows which data a model was trained on."""
    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    for name, folder in folders.items():
        source = resolve_dataset_source(folder.resolve().as_uri())
        mlflow.log_input(MetaDataset(source=source, name=name, digest=digest[:16]),
                         context=context)


def log_params_again(params: dict) -> None:
    """Log params to the active run. MLflow params are immutable: one that the run already
    holds with another value (a step retrained within the night's run, on changed rows or
    settings) keeps its first value, and the new one goes to the tag `retrained.<key>`."""
    import mlflow

    run = mlflow.active_run()
    held = mlflow.get_run(run.info.run_id).data.params
    fresh = {k: v for k, v in params.items() if k not in held}
    changed = {f"retrained.{k}": str(v) for k, v in params.items()
               if k in held and held[k] != str(v)}
    if fresh:
        mlflow.log_params(fresh)
    if changed:
        log.warning("run %s already holds %d of these params with other values: the new ones "
                    "are tagged retrained.*", run.info.run_id, len(changed))
        mlflow.set_tags(changed)


def metric_key(name: str) -> str:
    """MLflow metric names may not contain '@': ndcg@10 -> ndcg_at_10."""
    return name.replace("@", "_at_")


def log_model_runs(reports: dict[str, dict], tags: dict[str, str]) -> dict[str, str]:
    """A run per model nested under the active run (the night's), holding that model's
    holdout metrics under the same names for every model, so the MLflow UI compares them
    side by side (select the child runs, Compare). A rerun of the night logs into the same
    child runs (found by their `model` tag). Returns {model: child run id}."""
    import mlflow
    from mlflow import MlflowClient

    parent = mlflow.active_run()
    if parent is None:
        raise RuntimeError("log_model_runs needs the night's run to be active")
    pid = parent.info.run_id
    found = MlflowClient().search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{pid}'")
    existing = {r.data.tags.get("model"): r.info.run_id for r in found}
    out = {}
    for name, report in reports.items():
        with mlflow.start_run(run_id=existing.get(name),
                              run_name=None if name in existing else name,
                              nested=True, tags={**tags, "model": name}) as child:
            mlflow.log_metrics({metric_key(k): float(v) for k, v in report.items()})
        out[name] = child.info.run_id
    return out


class _KerasFlavor:
    """`mlflow.keras` whose `save_model` first creates the model's folder: MLflow 3.17's
    keras flavor writes an input example before it creates that folder and fails with
    FileNotFoundError (mlflow/mlflow#16183, open). Everything else is `mlflow.keras`'s."""

    def __getattr__(self, name):
        import mlflow.keras

        return getattr(mlflow.keras, name)

    @staticmethod
    def save_model(model, path, **kwargs):
        import mlflow.keras

        os.makedirs(path, exist_ok=True)
        return mlflow.keras.save_model(model, path, **kwargs)


def log_keras_model(model, name: str, input_example, **kwargs):
    """`mlflow.keras.log_model` with an input example (shown in the UI with the model's
    signature, saved with the model for serving)."""
    from mlflow.models import Model

    return Model.log(artifact_path=None, name=name, flavor=_KerasFlavor(), model=model,
                     input_example=input_example, **kwargs)
