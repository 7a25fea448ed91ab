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

from nightshelf import lake, storage
from nightshelf.config import Config, MissingInput

R = TypeVar("R", bound="Record")


@dataclass(frozen=True)
class Record:
    """A task's record. A task that writes several per night (validation, one per stage)
    names which with `key()`, and `find`/`read` take the same key after `ds`."""
    NAME: ClassVar[str] = ""
    ds: str

    def key(self) -> tuple[str, ...]:
        return ()

    @classmethod
    def path(cls, cfg: Config, ds: str, *key: str) -> Path:
        return lake.run_dir(cfg, ds) / f"{'-'.join((cls.NAME, *key))}.json"

    def write(self, cfg: Config) -> Path:
        path = self.path(cfg, self.ds, *self.key())
        storage.write_text(path, json.dumps(dataclasses.asdict(self), indent=2,
                                            sort_keys=True, default=str))
        return path

    @classmethod
    def find(cls: type[R], cfg: Config, ds: str, *key: str) -> R | None:
        """The night's record, or None when its task has not run."""
        path = cls.path(cfg, ds, *key)
        return _build(cls, json.loads(path.read_text())) if path.exists() else None

    @classmethod
    def read(cls: type[R], cfg: Config, ds: str, *key: str) -> R:
        found = cls.find(cfg, ds, *key)
        if found is None:
            raise MissingInput(f"{cls.path(cfg, ds, *key)} is missing: run the "
                               f"{' '.join((cls.NAME, *key))} step for ds={ds} first")
        return found


def _build(cls, data):
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls)
        return cls(**{f.name: _build(hints[f.name], data[f.name])
                      for f in dataclasses.fields(cls) if f.init and f.name in data})
    origin = typing.get_origin(cls)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(cls) if a is not type(None)]
        return None if data is None else _build(args[0], data)
    if origin is list and data is not None:
        (arg,) = typing.get_args(cls)
        return [_build(arg, x) for x in data]
    return data


@dataclass(frozen=True)
class CleanCounts(Record):
    """What the clean job made of a day's raw rows; every row is accounted for once."""
    NAME: ClassVar[str] = "counts"
    rows_in: int
    clean: int
    duplicates: int
    quarantined: int
    duplicates_by_kind: dict[str, int]
    quarantined_by_reason: dict[str, int]
    extra_columns: list[str] = dataclasses.field(default_factory=list)
    catalog_items: int = 0
    catalog_rejected: int = 0

    @classmethod
    def path(cls, cfg: Config, ds: str, *key: str) -> Path:
        return lake.clean_counts(cfg, ds)

    @property
    def bots(self) -> int:
        return self.quarantined_by_reason.get("bot_user", 0)

    @property
    def duplicate_rate(self) -> float:
        return self.duplicates / max(self.rows_in, 1)

    @property
    def quarantine_rate(self) -> float:
        """Bots are counted apart: a crawler's flood says nothing about the export's health."""
        return (self.quarantined - self.bots) / max(self.rows_in - self.bots, 1)


@dataclass(frozen=True)
class SuiteResult:
    suite: str
    success: bool
    statistics: dict
    failed: list[dict]   # per failed expectation: its type, kwargs, what was observed


@dataclass(frozen=True)
class ValidationRecord(Record):
    """A stage's Great Expectations suites for the night (`validation-<stage>.json`)."""
    NAME: ClassVar[str] = "validation"
    stage: str
    success: bool
    suites: list[SuiteResult]
    data_docs: str
    fingerprint: str | None = None   # of the staged lists that passed (recommendations)

    def key(self) -> tuple[str, ...]:
        return (self.stage,)


@dataclass(frozen=True)
class DriftCheck:
    check: str
    value: float | None
    warn: float | None
    fail: float | None
    status: str          # ok, warn, fail, n/a or info
    note: str


@dataclass(frozen=True)
class DriftRecord(Record):
    """Night-over-night drift and sanity checks, run before publish."""
    NAME: ClassVar[str] = "drift"
    previous: str | None
    checks: list[DriftCheck]

    @property
    def flagged(self) -> list[DriftCheck]:
        return [c for c in self.checks if c.status in ("warn", "fail")]


@dataclass(frozen=True)
class Serving:
    """What serves the night: a registered ranker version, or a baseline."""
    kind: str            # "model", "item_knn", "buy_again" or "popularity"
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


@dataclass(frozen=True)
class FeedbackRecord(Record):
    """The lists published for `served_ds` (the night before) scored against what users did
    on `ds` (jobs/feedback.py); `served` is None, with the reason in `skipped`, when there
    was nothing to score."""
    NAME: ClassVar[str] = "feedback"
    served_ds: str
    top_n: int | None
    served: dict | None
    skipped: str | None

    def summary(self) -> dict:
        """What the manifest and the night's MLflow run show of it."""
        return {"served_ds": self.served_ds, "top_n": self.top_n, "skipped": self.skipped,
                **(self.served or {})}
