"""The landing zone's contract: which files a landed partition holds and how Spark reads
them (every column as a string, broken lines kept for quarantine, an export's own column
names mapped to the contract's). The clean job and the raw suite read landed data through
here, so they cannot disagree on what was landed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from nightshelf import schema as S
from nightshelf.config import EventsConfig, UserError
from nightshelf.lake import LANDED_FORMATS as READERS

log = logging.getLogger(__name__)


class InputError(UserError, ValueError):
    """A landed file or folder that cannot be read as it is; the message says what to do."""


def require_columns(df: DataFrame, required: tuple[str, ...], what: str) -> None:
    """Fail with the missing columns named, and the columns that were there."""
    missing = [c for c in required if c not in df.columns]
    if missing:
        got = ", ".join(c for c in df.columns if not c.startswith("_"))
        raise ValueError(
            f"{what}: column(s) {', '.join(missing)} missing (got: {got}); rename them in the "
            f"export or map them with events.column_map in the config"
        )


def landed_files(folder: Path, what: str) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"{what}: no landed folder {folder} (land the day's files there first)")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in READERS)
    if not files:
        other = sorted(p.name for p in folder.iterdir() if not p.name.startswith(("_", ".")))
        raise InputError(
            f"{what}: no .csv, .jsonl or .parquet file in {folder} (found: {other or 'nothing'})"
        )
    return files


PARQUET_MAGIC = b"PAR1"


def check_content(path: Path, what: str) -> None:
    """Fail if a file's bytes are not what its extension says (a Parquet file named .csv
    would otherwise be read as one garbled CSV column)."""
    fmt = READERS[path.suffix.lower()]
    with path.open("rb") as f:
        head = f.read(65536)
    is_parquet = head.startswith(PARQUET_MAGIC)
    looks = "Parquet" if is_parquet else "binary" if b"\0" in head else "text"
    if fmt == "parquet" and not is_parquet and head:
        raise InputError(f"{what}: {path.name} is named .parquet but holds {looks} (it does not "
                         f"start with PAR1); give it the extension of what it is (.csv or "
                         f".jsonl) or re-export it as Parquet")
    if fmt in ("csv", "json") and looks != "text":
        raise InputError(f"{what}: {path.name} is named {path.suffix} but holds {looks} data; "
                         f"give it the extension of what it is (.parquet for Parquet) or "
                         f"re-export it as {fmt.upper()}")
    if fmt == "json":
        first = next((ln.strip() for ln in head.splitlines() if ln.strip()), b"")
        if first and not first.startswith(b"{"):
            raise InputError(f"{what}: {path.name} is named {path.suffix} but its first line is "
                             f"not a JSON object ({first[:40]!r}); JSON Lines means one "
                             f"{{...}} object per line: re-export it, or rename it if it is "
                             f"CSV")


def read_as_strings(spark: SparkSession, path: Path, what: str) -> DataFrame:
    """One landed file with every column as a string, so that parsing happens in the job.

    A line that does not parse (a CSV row with too few or too many fields, a broken JSON
    line) keeps its text in `_corrupt_record`, for the job to quarantine.
    """
    fmt = READERS[path.suffix.lower()]
    check_content(path, what)
    try:
        if fmt == "csv":
            header = spark.read.option("header", True).csv(str(path)).columns
            if not header:
                raise InputError(f"{what}: {path.name} is empty (not even a header line); "
                                 f"re-export the day, then rerun the night")
            schema = ", ".join(f"`{c}` string" for c in header) + f", {S.CORRUPT} string"
            df = (spark.read.option("header", True).option("mode", "PERMISSIVE")
                  .option("columnNameOfCorruptRecord", S.CORRUPT).schema(schema)
                  .csv(str(path)))
        elif fmt == "json":
            df = (spark.read.option("primitivesAsString", True)
                  .option("columnNameOfCorruptRecord", S.CORRUPT).json(str(path)))
        else:
            df = spark.read.parquet(str(path))
        df = df.select([F.col(f"`{c}`").cast("string").alias(c.strip()) for c in df.columns])
        df.schema  # noqa: B018  (forces the read of the file's schema here)
    except InputError:
        raise
    except Exception as exc:  # pyspark raises many kinds; all mean the same to the operator
        raise InputError(
            f"{what}: cannot read {path} as {fmt} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200]}); check the file is really {fmt}"
        ) from exc
    return df


def read_landed(spark: SparkSession, folder: Path, what: str,
                column_map: dict[str, str] | None = None) -> DataFrame:
    """All files of a landed partition, unioned by column name, columns renamed by the map."""
    frames = []
    for path in landed_files(folder, what):
        df = read_as_strings(spark, path, what)
        for src, dst in (column_map or {}).items():
            if src in df.columns:
                df = df.withColumnRenamed(src, dst)
        frames.append(df.withColumn("_source_file", F.lit(path.name)))
        log.info("%s: reading %s", what, path)
    out = frames[0]
    for df in frames[1:]:
        out = out.unionByName(df, allowMissingColumns=True)
    return out


def with_default_event_type(df: DataFrame, events: EventsConfig) -> DataFrame:
    """An export without an event_type column (e.g. orders only) gets the configured type."""
    if S.EVENT_TYPE not in df.columns and events.default_event_type:
        return df.withColumn(S.EVENT_TYPE, F.lit(events.default_event_type))
    return df
