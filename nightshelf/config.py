"""Typed, frozen configuration: packaged defaults, a YAML file, then environment overrides.

Loading is explicit (`load_config()`); importing this module reads nothing.

Precedence, lowest first:
1. `nightshelf/defaults.yaml` (shipped with the package);
2. the file named by `$NIGHTSHELF_CONFIG` (or the `path` argument);
3. environment variables `NIGHTSHELF__SECTION__KEY=value` (values parsed as YAML scalars);
4. `$NIGHTSHELF_HOME` for `home`.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

ENV_PREFIX = "NIGHTSHELF__"


class UserError(Exception):
    """An error the user fixes from its message alone (a bad date, an unknown config key, a
    landed file that cannot be read, a failed suite): the CLI prints it and exits non-zero
    without a traceback, and a retry of the task cannot help."""


# the exit code of a command that failed on a UserError: the DAG fails such a task at once
# instead of retrying it (1 is any other failure, 2 a bad command line)
USER_ERROR_EXIT = 3


class MissingInput(UserError, FileNotFoundError):
    """A step's input is not there (a day not landed, a step run before the one that writes
    its input): the message names the path and the step to run first."""


class ConfigError(UserError, ValueError):
    """The configuration cannot be read: the message names the key and what is expected."""


# read through importlib.resources: also from the job zip that executors import (`--py-files`)
DEFAULTS = resources.files("nightshelf").joinpath("defaults.yaml")


@dataclass(frozen=True)
class EventsConfig:
    type_map: dict[str, str]
    weights: dict[str, float]
    double_fire_seconds: int
    late_tolerance_hours: int
    future_tolerance_minutes: int
    max_price: float
    max_quantity: int
    max_events_per_user_day: int
    pii: dict[str, str]
    column_map: dict[str, str] = field(default_factory=dict)
    default_event_type: str = ""


@dataclass(frozen=True)
class FeaturesConfig:
    windows_days: list[int]
    sequence_length: int
    history_days: int
    popularity_days: int = 7
    new_item_days: int = 7


@dataclass(frozen=True)
class ModelConfig:
    name: str
    max_len: int
    dim: int
    blocks: int
    heads: int
    dropout: float
    epochs: int
    batch_size: int
    learning_rate: float
    patience: int
    seed: int
    holdout_days: int
    metrics_k: list[int]
    sampled_softmax_above: int = 5_000
    negatives: int = 1024
    max_train_users: int = 200_000
    max_train_minutes: float = 6.0
    warm_start: bool = True
    warm_epochs: int = 10


@dataclass(frozen=True)
class RankerConfig:
    name: str
    label_days: int
    label_windows: int
    candidates: dict[str, int]
    embedding_dim: int
    title_tokens: int
    cross_layers: int
    deep: list[int]
    dropout: float
    epochs: int
    batch_size: int
    learning_rate: float
    patience: int
    max_rows: int = 3_000_000
    max_train_minutes: float = 5.0
    members: int = 1


@dataclass(frozen=True)
class GateConfig:
    metric: str
    tolerance: float
    min_coverage: float = 0.02


@dataclass(frozen=True)
class ScoringConfig:
    top_n: int
    batch_size: int
    exclusion_window_days: int
    repurchase_min_share: float = 0.1
    repurchase_min_buyers: int = 3


@dataclass(frozen=True)
class ValidationConfig:
    raw_mostly: float
    max_quarantine_rate: float
    max_duplicate_rate: float


@dataclass(frozen=True)
class DriftConfig:
    volume_change_warn: float
    volume_change_fail: float
    rate_change_warn: float
    rate_change_fail: float
    psi_warn: float
    psi_fail: float
    overlap_warn: float
    overlap_fail: float


@dataclass(frozen=True)
class SparkConfig:
    master: str
    shuffle_partitions: int
    driver_memory: str
    executor_memory: str
    executor_cores: int      # 0: the cluster manager's default
    cores_max: int           # standalone/Mesos: cores a night's job takes in all (0: all)
    executor_python: str     # the workers' Python ("": the job environment's, as the driver)

    def submit_conf(self, job_python: str) -> dict[str, str]:
        """What spark-submit passes (`--conf`): the resources and the workers' Python, the
        same for the DAG's SparkSubmitOperator and `nightshelf bootstrap`."""
        conf = {"spark.driver.memory": self.driver_memory,
                "spark.executor.memory": self.executor_memory,
                "spark.pyspark.python": self.executor_python or job_python,
                "spark.pyspark.driver.python": job_python,
                "spark.log.level": "WARN"}
        if self.executor_cores:
            conf["spark.executor.cores"] = str(self.executor_cores)
        if self.cores_max:
            conf["spark.cores.max"] = str(self.cores_max)
        return conf


@dataclass(frozen=True)
class LandingConfig:
    marker: str          # the file that says a day's landing is complete ("" : any data file)
    wait_minutes: int    # how long the night's sensor waits for it before failing the night
    poke_seconds: int    # how often it looks (in reschedule mode: no worker slot held between)


@dataclass(frozen=True)
class TextConfig:
    enabled: bool        # item text vectors from the pretrained encoder (training/text.py)
    neighbours: int      # each item's nearest items by text: the content source, new items


@dataclass(frozen=True)
class StorageConfig:
    landing: str         # "" (<home>/landing), a path, or a URI: file://, s3://, hdfs://...
    lake: str            # "" (<home>/lake), a path, or a URI
    options: dict[str, Any]  # the fsspec filesystem's options for a remote URI


@dataclass(frozen=True)
class MlflowConfig:
    tracking_uri: str
    experiment: str


@dataclass(frozen=True)
class DirtConfig:
    exact_duplicates: float
    double_fires: float
    null_required: float
    unknown_event_types: float
    bad_timestamps: float


@dataclass(frozen=True)
class ShopConfig:
    seed: int
    users: int
    items: int
    days: int
    end: str
    initial_user_fraction: float
    new_items_per_day: int
    formats: list[str]
    dirt: DirtConfig
    profile: str = "default"


@dataclass(frozen=True)
class Config:
    home: Path
    events: EventsConfig
    landing: LandingConfig
    features: FeaturesConfig
    model: ModelConfig
    ranker: RankerConfig
    gate: GateConfig
    scoring: ScoringConfig
    validation: ValidationConfig
    drift: DriftConfig
    spark: SparkConfig
    mlflow: MlflowConfig
    shop: ShopConfig
    storage: StorageConfig
    text: TextConfig

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI: configured, or a SQLite store under the home folder."""
        if self.mlflow.tracking_uri:
            return self.mlflow.tracking_uri
        return f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        return self.home / "mlflow" / "artifacts"


def _merge(base: dict, override: Mapping) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _env_overrides(environ: Mapping[str, str]) -> dict:
    tree: dict = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX):].split("__") if k]
        node = tree
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = yaml.safe_load(raw) if raw != "" else ""
    return tree


def _build(cls: type, data: Any, where: str) -> Any:
    """Build a (nested) frozen dataclass from plain data, checking keys and coercing scalars."""
    if not dataclasses.is_dataclass(cls):
        return _coerce(cls, data, where)
    if not isinstance(data, Mapping):
        raise ConfigError(f"config {where or '<root>'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"config {where or '<root>'}: unknown key(s) {unknown}; known: {sorted(names)}"
        )
    kwargs = {}
    for f in dataclasses.fields(cls):
        sub = f"{where}.{f.name}" if where else f.name
        if f.name in data:
            kwargs[f.name] = _build(hints[f.name], data[f.name], sub)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"config {sub}: missing (add it to your config file)")
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    try:
        if tp is Path:
            return Path(value)
        if origin is dict:
            kt, vt = typing.get_args(tp)
            return {_coerce(kt, k, where): _coerce(vt, v, where) for k, v in (value or {}).items()}
        if origin is list:
            (it,) = typing.get_args(tp)
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            return [_coerce(it, v, where) for v in value]
        if tp is bool:
            return bool(value)
        if tp in (int, float, str):
            if tp is int and isinstance(value, float) and not value.is_integer():
                raise ValueError("not a whole number")
            return tp(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config {where}: cannot read {value!r} as {tp}: {exc}") from exc
    return value


def load_config(path: str | os.PathLike | None = None,
                environ: Mapping[str, str] | None = None) -> Config:
    """Load the configuration (defaults, then file, then environment)."""
    environ = os.environ if environ is None else environ
    data = yaml.safe_load(DEFAULTS.read_text())
    path = path or environ.get("NIGHTSHELF_CONFIG")
    if path:
        user = yaml.safe_load(Path(path).read_text()) or {}
        data = _merge(data, user)
    data = _merge(data, _env_overrides(environ))
    if environ.get("NIGHTSHELF_HOME"):
        data["home"] = environ["NIGHTSHELF_HOME"]
    cfg = _build(Config, data, "")
    return dataclasses.replace(cfg, home=cfg.home.expanduser().resolve())
