"""The night's `train_ranker` step: the DCN ranker, fitted on the training rows the Spark
job wrote (`jobs/ranker_rows.py`), streamed into Keras; logged to the night's MLflow run
and registered, tagged with the SASRec version whose scores it reads.

Idempotent like `train`: the same rows and settings reuse the version registered first.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time

from nightshelf import lake
from nightshelf.config import Config
from nightshelf.records import RankerRecord, RowsRecord, SasrecRecord
from nightshelf.tracking import SASREC_TAG, log_keras_model, log_params_again, setup_mlflow
from training import plots, ranker
from training.serve import SETTINGS_TAG, Settings
from training.train import reusable

log = logging.getLogger(__name__)


def fingerprint(cfg: Config, sasrec: SasrecRecord, rows: RowsRecord) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"sasrec": [sasrec.fingerprint, sasrec.version],
                         "rows": [rows.rows, rows.positives, rows.negative_rate],
                         "ranker": vars(cfg.ranker), "seed": cfg.model.seed},
                        sort_keys=True, default=str).encode())
    return h.hexdigest()


def run(cfg: Config, ds: str, force: bool = False) -> RankerRecord:
    import keras
    import mlflow
    import pyarrow.dataset as pads
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    keras.utils.set_random_seed(cfg.model.seed)
    setup_mlflow(cfg)
    sas, rows = SasrecRecord.read(cfg, ds), RowsRecord.read(cfg, ds)
    if rows.sasrec_version != sas.version:
        raise ValueError(f"ranker rows for ds={ds} were built with SASRec v"
                         f"{rows.sasrec_version}, not v{sas.version}: rerun ranker_rows")
    fp = fingerprint(cfg, sas, rows)
    previous = RankerRecord.find(cfg, ds)
    if not force and previous and reusable(cfg, previous, fp, previous.name, previous.version):
        log.info("train_ranker ds=%s: rows and settings unchanged; reusing %s v%s", ds,
                 previous.name, previous.version)
        return previous
    path = lake.ranker_rows(cfg, ds)

    def on_epoch(epoch: int, logs: dict) -> None:
        mlflow.log_metrics({f"ranker.{k}": float(v) for k, v in logs.items()}, step=epoch)
        log.info("ranker member %d/%d epoch %d loss=%.4f val_loss=%.4f val_auc=%.4f",
                 logs.get("member", 0) + 1, cfg.ranker.members, epoch, logs["loss"],
                 logs["val_loss"], logs["val_auc"])

    sizes = {"ranker_rows": rows.rows, "ranker_users": rows.users,
             "ranker_positives": rows.positives, "ranker_negative_rate": rows.negative_rate,
             "ranker_candidate_recall": rows.candidate_recall}
    with mlflow.start_run(run_id=sas.run_id):
        log_params_again({f"ranker.{k}": v for k, v in vars(cfg.ranker).items()})
        log_params_again({f"data.{k}": v for k, v in sizes.items()})
        log.info("train_ranker ds=%s: %d rows (%d positives, negatives kept at %.3f) from %s",
                 ds, rows.rows, rows.positives, rows.negative_rate, path)
        t0 = time.monotonic()
        model, history = ranker.fit_stream(path, cfg.ranker, cfg.model.seed, on_epoch)
        seconds = time.monotonic() - t0
        mlflow.log_metric("ranker.train_seconds", seconds)
        mlflow.log_figure(plots.training_curves(
            {k: v for k, v in history.items() if "loss" in k or k == "member"}),
            "plots/ranker_training_curves.png")
        example = ranker.from_rows(pads.dataset(str(path), format="parquet").head(2))[0]
        info = log_keras_model(
            model, "model", example.inputs(), registered_model_name=cfg.ranker.name,
            signature=infer_signature(example.inputs(), ranker.predict(model, example)),
            pip_requirements=[f"keras=={keras.__version__}", "tensorflow-cpu==2.21.0"])
    version = str(info.registered_model_version)
    client = MlflowClient()
    client.set_model_version_tag(cfg.ranker.name, version, SASREC_TAG, sas.version)
    client.set_model_version_tag(cfg.ranker.name, version, SETTINGS_TAG,
                                 Settings.of(cfg).to_json())
    record = RankerRecord(ds=ds, run_id=sas.run_id, name=cfg.ranker.name, version=version,
                          sasrec_version=sas.version, fingerprint=fp,
                          epochs_run=len(history.get("loss", [])), train_seconds=seconds,
                          sizes=sizes)
    record.write(cfg)
    log.info("train_ranker ds=%s: registered %s v%s (reads SASRec v%s) in %.0fs", ds,
             record.name, version, sas.version, seconds)
    return record
