"""The source contract for the ``duckdb`` source, over Parquet files, a folder and CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from lomas_core.testing.source_contract import SourceContract


class TestDuckDBParquetContract(SourceContract):
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
    def data_dir(self, tmp_path: Path) -> Path:
        folder = tmp_path / "data"
        folder.mkdir()
        return folder

    @pytest.fixture
    def adapter_options(self, data_dir: Path) -> dict[str, Any]:
        return {"allowed_dirs": [str(data_dir)], "memory_limit": "256MB", "threads": 1}

    @pytest.fixture
    def place(self, data_dir: Path) -> Any:
        import pyarrow.parquet as pq

        def place(table: Any, name: str) -> dict[str, Any]:
            path = data_dir / f"{name}.parquet"
            pq.write_table(table, path)
            return {"path": str(path)}

        return place

    @pytest.fixture
    def outside(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": str(tmp_path / "elsewhere" / "x.parquet")}


class TestDuckDBFolderContract(TestDuckDBParquetContract):
    """A folder of Parquet files (two parts per dataset)."""

    @pytest.fixture
    def place(self, data_dir: Path) -> Any:
        import pyarrow.parquet as pq

        def place(table: Any, name: str) -> dict[str, Any]:
            folder = data_dir / name
            folder.mkdir(exist_ok=True)
            for old in folder.glob("*.parquet"):
                old.unlink()
            half = table.num_rows // 2
            pq.write_table(table.slice(0, half), folder / "part-0.parquet")
            pq.write_table(table.slice(half), folder / "part-1.parquet")
            return {"path": str(folder)}

        return place


class TestDuckDBCsvContract(TestDuckDBParquetContract):
    @pytest.fixture
    def place(self, data_dir: Path) -> Any:
        import pyarrow.csv as pacsv

        def place(table: Any, name: str) -> dict[str, Any]:
            path = data_dir / f"{name}.csv"
            pacsv.write_csv(table, path)
            return {"path": str(path)}

        return place
