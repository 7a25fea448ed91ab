"""MLflow set-up shared by training, gate, scoring and the report."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from nightshelf import lake
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


def write_record(cfg: Config, ds: str, name: str, data: dict) -> Path:
    """A per-night JSON record that the next task reads (train.json, gate.json, ...)."""
    path = lake.run_dir(cfg, ds) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    tmp.replace(path)
    return path


def read_record(cfg: Config, ds: str, name: str) -> dict:
    path = lake.run_dir(cfg, ds) / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the step that writes {name}.json "
                                f"for ds={ds} first")
    return json.loads(path.read_text())
