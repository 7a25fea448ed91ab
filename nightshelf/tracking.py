"""MLflow set-up shared by every task that logs to or loads from the tracking server."""

from __future__ import annotations

import logging
from pathlib import Path

from nightshelf.config import Config

log = logging.getLogger(__name__)

CHAMPION = "champion"
SASREC_TAG = "sasrec_version"  # on a ranker version: the SASRec version it takes scores from


def setup_mlflow(cfg: Config) -> str:
    """Point MLflow at the configured store; create the experiment with an absolute artifact root.

    Returns the experiment id.
    """
    import mlflow

    (cfg.home / "mlflow").mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(cfg.tracking_uri)
    exp = mlflow.get_experiment_by_name(cfg.mlflow.experiment)
    if exp is None:
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


def metric_key(name: str) -> str:
    """MLflow metric names may not contain '@': ndcg@10 -> ndcg_at_10."""
    return name.replace("@", "_at_")
