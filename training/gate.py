"""Champion/challenger gate: promote the night's model only if it earns it.

A challenger becomes `champion` (an MLflow registry alias) when its lists have not collapsed
onto a few items (`gate.min_coverage`), it beats the best baseline on the holdout and is not
worse than the current champion on the *same* holdout by more than `gate.tolerance`.
Otherwise the night is served by the champion, or, when there is no champion yet, by the
best baseline that scoring can serve (item-kNN, buy-again or popularity), and the reason is
recorded in the MLflow run and in gate.json (which the manifest copies).
"""

from __future__ import annotations

import logging

from nightshelf.config import Config
from nightshelf.records import EvaluationRecord, GateRecord, RankerRecord, Serving
from nightshelf.tracking import CHAMPION, metric_key, setup_mlflow

log = logging.getLogger(__name__)

POPULARITY, ITEM_KNN, BUY_AGAIN = "popularity", "item_knn", "buy_again"
SERVABLE_BASELINES = (ITEM_KNN, BUY_AGAIN, POPULARITY)  # what training.score can serve


def decide(metric: str, challenger: dict, baselines: dict[str, dict], champion: dict | None,
           tolerance: float, min_coverage: float = 0.0) -> tuple[bool, str]:
    """(promote?, why) from metric reports; pure, so the rule is tested on its own."""
    value = challenger[metric]
    covered = challenger.get("possible_coverage", 1.0)
    if covered < min_coverage:
        return False, (f"challenger's lists collapse: {challenger.get('distinct_items')} "
                       f"distinct items over {challenger.get('users')} users' lists, "
                       f"{covered:.2%} of what they could hold (floor {min_coverage:.0%}); "
                       f"its {metric}={value:.4f} does not count")
    best_name, best = max(((n, r[metric]) for n, r in baselines.items()), key=lambda t: t[1])
    if value <= best:
        return False, (f"challenger {metric}={value:.4f} does not beat the best baseline "
                       f"{best_name} ({best:.4f})")
    if champion is not None and value < champion[metric] - tolerance:
        return False, (f"challenger {metric}={value:.4f} is worse than the champion "
                       f"({champion[metric]:.4f}) by more than {tolerance}")
    if champion is None:
        return True, (f"no champion yet; challenger {metric}={value:.4f} beats {best_name} "
                      f"({best:.4f})")
    return True, (f"challenger {metric}={value:.4f} vs champion {champion[metric]:.4f} "
                  f"(tolerance {tolerance}) and best baseline {best_name} {best:.4f}")


def fallback_baseline(baselines: dict[str, dict], metric: str) -> str:
    """With no champion yet, the best baseline that scoring can serve."""
    return max((b for b in SERVABLE_BASELINES if b in baselines),
               key=lambda b: baselines[b][metric])


def run(cfg: Config, ds: str, force: bool = False) -> GateRecord:
    """Decide from the night's evaluation (`jobs/evaluate.py` scored the challenger and the
    champion on the same holdout), move the alias, tag the run and the version."""
    import mlflow
    from mlflow import MlflowClient

    setup_mlflow(cfg)
    ev, trained = EvaluationRecord.read(cfg, ds), RankerRecord.read(cfg, ds)
    if ev.challenger_version != trained.version:
        raise ValueError(f"gate ds={ds}: the evaluation scored v{ev.challenger_version} but "
                         f"train_ranker registered v{trained.version}: rerun evaluate")
    client = MlflowClient()
    name, version = trained.name, trained.version
    decided = GateRecord.find(cfg, ds)
    if decided and decided.challenger_version == version and not force:
        # a rerun of the night: keep its decision, and never move the champion alias back
        log.info("gate ds=%s: v%s was already decided for this night (%s); serving %s", ds,
                 version, decided.reason, decided.serving.model_version)
        return decided
    champ_version, champ_report = ev.champion_version, ev.champion
    if champ_report is not None:
        log.info("gate ds=%s: champion v%s on tonight's holdout: %s=%.4f", ds, champ_version,
                 cfg.gate.metric, champ_report[cfg.gate.metric])
    promote, why = decide(cfg.gate.metric, ev.challenger, ev.baselines, champ_report,
                          cfg.gate.tolerance, cfg.gate.min_coverage)
    if promote:
        client.set_registered_model_alias(name, CHAMPION, version)
        serving = Serving("model", version, trained.run_id)
    elif champ_version is not None:
        champ = client.get_model_version(name, champ_version)
        serving = Serving("model", champ_version, champ.run_id)
    else:
        kind = fallback_baseline(ev.baselines, cfg.gate.metric)
        serving = Serving(kind, f"baseline:{kind}", trained.run_id)
    with mlflow.start_run(run_id=trained.run_id):
        served = (f"{name} v{serving.model_version}" if serving.kind == "model"
                  else f"the {serving.kind} baseline")
        mlflow.set_tags({"gate.promoted": str(promote), "gate.reason": why,
                         "gate.serving_version": serving.model_version,
                         # the run's description in the MLflow UI
                         "mlflow.note.content": (
                             f"Night {ds}: {name} v{version} was "
                             f"{'promoted to champion' if promote else 'kept out'} ({why}). "
                             f"The published lists come from {served}.")})
        if champ_report:
            mlflow.log_metrics({f"champion.{metric_key(k)}": float(v)
                                for k, v in champ_report.items()})
    client.set_model_version_tag(name, version, "gate", "promoted" if promote else "rejected")
    client.set_model_version_tag(name, version, "gate_reason", why)
    log.info("gate ds=%s: %s v%s: %s; serving %s", ds, "PROMOTED" if promote else "kept out",
             version, why, serving.model_version)
    record = GateRecord(ds=ds, model_name=name, challenger_version=version, promoted=promote,
                        reason=why, metric=cfg.gate.metric, champion_version=champ_version,
                        champion_metrics=champ_report, serving=serving)
    record.write(cfg)
    return record
