"""MLflow set-up shared by every task that logs to or loads from the tracking server."""

from __future__ import annotations

import logging

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


def metric_key(name: str) -> str:
    """MLflow metric names may not contain '@': ndcg@10 -> ndcg_at_10."""
    return name.replace("@", "_at_")
