"""Typed hand-offs between a night's tasks: one record per task, one atomic read and write.

Each task writes its record as `lake/runs/ds=.../<name>.json` (aside, then renamed); the
tasks after it read it back as the same dataclass. A field's name is written in one place,
so a task cannot read a key another never wrote.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, TypeVar

from nightshelf import lake
from nightshelf.config import Config

R = TypeVar("R", bound="Record")


@dataclass(frozen=True)
class Record:
    NAME: ClassVar[str] = ""
    ds: str

    @classmethod
    def path(cls, cfg: Config, ds: str) -> Path:
        return lake.run_dir(cfg, ds) / f"{cls.NAME}.json"

    def write(self, cfg: Config) -> Path:
        path = self.path(cfg, self.ds)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True,
                                  default=str))
        tmp.replace(path)
        return path

    @classmethod
    def find(cls: type[R], cfg: Config, ds: str) -> R | None:
        """The night's record, or None when its task has not run."""
        path = cls.path(cfg, ds)
        return _build(cls, json.loads(path.read_text())) if path.exists() else None

    @classmethod
    def read(cls: type[R], cfg: Config, ds: str) -> R:
        found = cls.find(cfg, ds)
        if found is None:
            raise FileNotFoundError(f"{cls.path(cfg, ds)} is missing: run the {cls.NAME} step "
                                    f"for ds={ds} first")
        return found


def _build(cls, data):
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls)
        return cls(**{f.name: _build(hints[f.name], data[f.name])
                      for f in dataclasses.fields(cls) if f.init and f.name in data})
    if typing.get_origin(cls) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(cls) if a is not type(None)]
        return None if data is None else _build(args[0], data)
    return data


@dataclass(frozen=True)
class Serving:
    """What serves the night: a registered ranker version, or a baseline."""
    kind: str            # "model", "item_knn" or "popularity"
    model_version: str   # the version, or "baseline:<kind>"
    run_id: str


@dataclass(frozen=True)
class ModelRecord(Record):
    """A model a step fitted and registered in the night's MLflow run, with the fingerprint
    of what it was fitted on (a rerun on the same inputs reuses the version)."""
    run_id: str
    name: str
    version: str
    fingerprint: str
    epochs_run: int
    train_seconds: float
    sizes: dict


@dataclass(frozen=True)
class SasrecRecord(ModelRecord):
    NAME: ClassVar[str] = "sasrec"


@dataclass(frozen=True)
class RowsRecord(Record):
    """The ranker's training rows (`lake/ranker_rows/ds=...`), written by the Spark job."""
    NAME: ClassVar[str] = "ranker_rows"
    sasrec_version: str
    rows: int
    positives: int
    users: int
    touched: int          # distinct (user, item) the window users touched: recall's base
    negative_rate: float  # share of negatives kept (weighted up by its inverse)
    seconds: float

    @property
    def candidate_recall(self) -> float:
        return round(self.positives / max(self.touched, 1), 4)


@dataclass(frozen=True)
class RankerRecord(ModelRecord):
    NAME: ClassVar[str] = "ranker"
    sasrec_version: str   # the SASRec version whose scores it reads


@dataclass(frozen=True)
class EvaluationRecord(Record):
    """Every model's metrics on the night's holdout (`ranker` is the challenger)."""
    NAME: ClassVar[str] = "evaluation"
    run_id: str
    challenger_version: str
    champion_version: str | None
    split: str
    reports: dict

    @property
    def challenger(self) -> dict:
        return self.reports["ranker"]

    @property
    def champion(self) -> dict | None:
        return self.reports.get("champion")

    @property
    def baselines(self) -> dict[str, dict]:
        return {k: v for k, v in self.reports.items()
                if k not in ("ranker", "champion", "sasrec")}


@dataclass(frozen=True)
class GateRecord(Record):
    NAME: ClassVar[str] = "gate"
    model_name: str
    challenger_version: str
    promoted: bool
    reason: str
    metric: str
    champion_version: str | None
    champion_metrics: dict | None
    serving: Serving


@dataclass(frozen=True)
class ScoreRecord(Record):
    NAME: ClassVar[str] = "score"
    users: int
    rows: int
    top_n: int
    serving: Serving
    staging: str
    seconds: float
