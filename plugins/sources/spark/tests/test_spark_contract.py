"""The source contract for the ``spark`` source (local[1]), over a Parquet file, a folder and CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from lomas_core.testing.source_contract import (
    CsvPlacement,
    FileSourceContract,
    ParquetFolderPlacement,
)


class TestSparkParquetContract(FileSourceContract):
    source_name = "spark"
    forbidden: ClassVar[tuple[str, ...]] = (
        "SELECT * FROM parquet.`/etc`",
        "SELECT * FROM csv.`/etc/passwd`",
        "SELECT * FROM text.`/etc/hostname`",
        "SET spark.sql.ansi.enabled = true",
        "SET spark.sql.runSQLOnFiles = true",
        "CREATE TABLE lomas_other (a INT)",
        "INSERT OVERWRITE DIRECTORY '/tmp/lomas-contract-out' SELECT * FROM df",
        "SELECT reflect('java.lang.System', 'getProperty', 'user.home')",
        "SELECT java_method('java.lang.System', 'getenv', 'HOME')",
        "SELECT * FROM range(10)",
        "SELECT input_file_name() FROM df",
        "SELECT (SELECT count(*) FROM df) FROM df",
        "WITH t AS (SELECT 1) SELECT * FROM t",
        "SHOW TABLES",
        "CACHE TABLE df",
        "ADD JAR /tmp/x.jar",
    )

    @pytest.fixture
    def adapter_options(self, data_dir: Path) -> dict[str, Any]:
        return {"allowed_dirs": [str(data_dir)], "threads": 1, "driver_memory": "512m",
                "shuffle_partitions": 1}


class TestSparkFolderContract(ParquetFolderPlacement, TestSparkParquetContract):
    """A folder of Parquet files (two parts per dataset)."""


class TestSparkCsvContract(CsvPlacement, TestSparkParquetContract):
    """One CSV file per dataset."""
