"""Logging set-up for command-line entry points (never at import time)."""

from __future__ import annotations

import logging
import os


def setup_logging(level: str | None = None) -> None:
    logging.basicConfig(
        level=(level or os.environ.get("NIGHTSHELF_LOG_LEVEL", "INFO")).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("py4j", "urllib3", "matplotlib", "alembic", "great_expectations"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
