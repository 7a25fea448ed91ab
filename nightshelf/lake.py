"""Where everything lives: one function per location.

The landing area and the lake are the config's `storage.landing` and `storage.lake`, by
default under the home folder; either may be a URI of another filesystem
(nightshelf/storage.py). What only this machine's processes use (Airflow's home, the GX
project, the MLflow store without a server, the job zip) stays under the home folder.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

from nightshelf import storage
from nightshelf.config import Config, MissingInput, UserError


class DateError(UserError, ValueError):
    """A logical date that is not YYYY-MM-DD."""


def parse_ds(ds: str) -> date:
    """Parse a logical date `YYYY-MM-DD`, with an error that says what is expected."""
    try:
        return date.fromisoformat(ds)
    except (TypeError, ValueError) as exc:
        raise DateError(f"logical date {ds!r} is not YYYY-MM-DD") from exc


def cutoff(ds: str) -> datetime:
    """End of the logical day `ds` in UTC: nothing at or after it may be used that night."""
    return datetime.combine(parse_ds(ds) + timedelta(days=1), time.min, tzinfo=timezone.utc)


def split(cfg: Config, ds: str) -> datetime:
    """The holdout split of night `ds`: `model.holdout_days` before its cutoff."""
    return cutoff(ds) - timedelta(days=cfg.model.holdout_days)


def label_window(cfg: Config, ds: str, k: int) -> tuple[datetime, datetime]:
    """(start, end) of the ranker's label window `k` (1 = the newest, ending at the split)."""
    days = cfg.ranker.label_days
    return (split(cfg, ds) - timedelta(days=k * days),
            split(cfg, ds) - timedelta(days=(k - 1) * days))


def points(cfg: Config, ds: str) -> dict[str, datetime]:
    """The night's points in time, by name: each label window's start (`window1`, newest
    first), the split and the cutoff; the item context is computed as of each."""
    out = {f"window{k}": label_window(cfg, ds, k)[0]
           for k in range(1, cfg.ranker.label_windows + 1)}
    return {**out, "split": split(cfg, ds), "cutoff": cutoff(ds)}


def part(ds: str) -> str:
    return f"ds={parse_ds(ds).isoformat()}"


def landing_root(cfg: Config) -> Path:
    return storage.locate(cfg.storage.landing, cfg.home / "landing", cfg.storage.options)


def lake_root(cfg: Config) -> Path:
    return storage.locate(cfg.storage.lake, cfg.home / "lake", cfg.storage.options)


def landing_events(cfg: Config, ds: str | None = None) -> Path:
    base = landing_root(cfg) / "events"
    return base / part(ds) if ds else base


# the landing contract's data files: suffix -> the Spark reader (nightshelf/landing.py)
LANDED_FORMATS = {".csv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def landing_complete(cfg: Config, ds: str) -> bool:
    """Has the day's landing finished? Its `landing.marker` file is there (with no marker
    configured: its events folder holds a data file)."""
    folder = landing_events(cfg, ds)
    if cfg.landing.marker:
        return (folder / cfg.landing.marker).is_file()
    return folder.is_dir() and any(p.suffix.lower() in LANDED_FORMATS for p in folder.iterdir())


def mark_landed(cfg: Config, ds: str) -> None:
    """Say the day's landing is complete (after its files are written)."""
    if cfg.landing.marker:
        (landing_events(cfg, ds) / cfg.landing.marker).touch()


def landing_catalog(cfg: Config, ds: str | None = None) -> Path:
    base = landing_root(cfg) / "catalog"
    return base / part(ds) if ds else base


def lake(cfg: Config, *parts: str) -> Path:
    return lake_root(cfg).joinpath(*parts)


def clean_events(cfg: Config, ds: str | None = None) -> Path:
    base = lake(cfg, "clean", "events")
    return base / part(ds) if ds else base


def clean_catalog(cfg: Config, ds: str | None = None) -> Path:
    base = lake(cfg, "clean", "catalog")
    return base / part(ds) if ds else base


def quarantine(cfg: Config, ds: str | None = None) -> Path:
    base = lake(cfg, "quarantine", "events")
    return base / part(ds) if ds else base


def clean_counts(cfg: Config, ds: str) -> Path:
    return lake(cfg, "clean", "_counts", part(ds), "counts.json")


def features(cfg: Config, table: str, ds: str | None = None) -> Path:
    base = lake(cfg, "features", table)
    return base / part(ds) if ds else base


# the context job's tables per point in time (`context(cfg, ds, point, CONTEXT_ITEMS)`)
CONTEXT_ITEMS = "items"            # popularity, users, first seen, rebuying
CONTEXT_NEIGHBOURS = "neighbours"  # co-visitation, each item's top neighbours
CONTEXT_LISTED = "listed"          # the items on sale at that point


def context(cfg: Config, ds: str, *parts: str) -> Path:
    """Item context of night `ds`: `vocab`, `points.json` (each point in time and its users),
    and per point (`split`, `cutoff`, `window1`..) the tables `CONTEXT_ITEMS`,
    `CONTEXT_NEIGHBOURS` and `CONTEXT_LISTED`."""
    return lake(cfg, "context", part(ds), *parts)


def ranker_rows(cfg: Config, ds: str, window: int | None = None) -> Path:
    """The ranker's training rows of night `ds` (one folder per label window)."""
    base = lake(cfg, "ranker_rows", part(ds))
    return base / f"window{window}" if window else base


def recommendations(cfg: Config, ds: str | None = None) -> Path:
    base = lake(cfg, "recommendations")
    return base / part(ds) if ds else base


MANIFEST = "_manifest.json"  # `_`-prefixed: every Parquet reader skips it


def manifest(cfg: Config, ds: str) -> Path:
    """The published night's manifest, beside its data files."""
    return recommendations(cfg, ds) / MANIFEST


def staging_recommendations(cfg: Config, ds: str) -> Path:
    """Where scoring writes a night's lists before they are validated and published."""
    return lake(cfg, "_staging", "recommendations", part(ds))


def run_dir(cfg: Config, ds: str) -> Path:
    """Per-night records that tasks hand to each other: training result, gate, validations."""
    return lake(cfg, "runs", part(ds))


def gx_root(cfg: Config) -> Path:
    return cfg.home / "gx"


def data_docs_index(cfg: Config) -> Path:
    return gx_root(cfg) / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"


def read_json(path: Path) -> dict | None:
    """A per-night JSON record, or None when that step has not written it."""
    return json.loads(path.read_text()) if path.exists() else None


def data_files(folder: Path) -> list[Path]:
    """The Parquet data files of a partition folder, sorted (none if it is not there). Of a
    published night on a filesystem without atomic rename, only those its manifest names:
    files a publish copied in before its manifest swap (or left by one that was killed)
    are not part of the night."""
    if not folder.is_dir():
        return []
    found = sorted(folder.glob("*.parquet"), key=lambda p: p.name)
    if storage.renames_atomically(folder):
        return found
    listed = (read_json(folder / MANIFEST) or {}).get("files")
    if listed is None:
        return found
    listed = set(listed)
    return [p for p in found if p.name in listed]


def read_parquet(folder: Path, columns: list[str] | None = None, needs: str = ""):
    """The Parquet files of one partition folder as one pyarrow Table, or None if it has none
    (with `needs`, the step that writes it: a FileNotFoundError saying to run it first).

    Reads `*.parquet` only, so no other file beside the data is mistaken for one.
    """
    import pyarrow.dataset as pads

    files = data_files(folder)
    if not files:
        if needs:
            raise MissingInput(f"no Parquet files in {folder}: run {needs} first")
        return None
    fs, _ = storage.arrow(folder)
    return pads.dataset([storage.arrow(p)[1] for p in files], format="parquet",
                        filesystem=fs).to_table(columns=columns)


def fingerprint(folder: Path) -> str:
    """SHA-256 over the data files' names and the data they hold, decoded (Arrow IPC of each
    record batch): what was validated is what is published. The data, not the bytes: a
    writer may order its footer's metadata differently from one run to the next (parquet-mr
    writes each column's set of encodings in a JVM hash order). A file that is not Parquet
    is hashed as bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    h = hashlib.sha256()
    for p in data_files(folder):
        h.update(p.name.encode())
        try:
            with p.open("rb") as fh:
                for batch in pq.ParquetFile(fh).iter_batches(batch_size=65_536):
                    h.update(batch.serialize())
        except (pa.ArrowInvalid, OSError):
            with p.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()
