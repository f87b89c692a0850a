"""The source contract for the ``duckdb`` source, over Parquet files, a folder and CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from lomas_core.testing.source_contract import (
    CsvPlacement,
    FileSourceContract,
    ParquetFolderPlacement,
)


class TestDuckDBParquetContract(FileSourceContract):
    source_name = "duckdb"
    forbidden: ClassVar[tuple[str, ...]] = (
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SET memory_limit = '20GB'",
        "SET enable_external_access = true",
        "INSTALL httpfs",
        "ATTACH '/tmp/lomas-contract-attach.db' AS other",
        "COPY (SELECT 1) TO '/tmp/lomas-contract-copy.csv'",
    )

    @pytest.fixture
    def adapter_options(self, data_dir: Path) -> dict[str, Any]:
        return {"allowed_dirs": [str(data_dir)], "memory_limit": "256MB", "threads": 1}


class TestDuckDBFolderContract(ParquetFolderPlacement, TestDuckDBParquetContract):
    """A folder of Parquet files (two parts per dataset)."""


class TestDuckDBCsvContract(CsvPlacement, TestDuckDBParquetContract):
    """One CSV file per dataset."""
