"""Shared fixtures: a config with its home in a temporary folder, one local Spark session."""

from __future__ import annotations

import os
import sys

import pytest

from nightshelf.config import load_config


@pytest.fixture
def cfg(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIGHTSHELF")}
    env["NIGHTSHELF_HOME"] = str(tmp_path / "home")
    return load_config(environ=env)


@pytest.fixture(scope="session")
def spark():
    pytest.importorskip("pyspark")
    from pyspark.sql import SparkSession

    # Python workers run this interpreter, as the CLI and the DAG have them do
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (SparkSession.builder.master("local[1]").appName("nightshelf-tests")
               .config("spark.sql.shuffle.partitions", "1")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.ui.enabled", "false")
               .config("spark.log.level", "ERROR")
               .getOrCreate())
    yield session
    session.stop()
