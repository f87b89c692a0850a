"""The source contract for the ``spark`` source (local[1]), over a Parquet file, a folder and CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from lomas_core.testing.source_contract import SourceContract


class TestSparkParquetContract(SourceContract):
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
    def data_dir(self, tmp_path: Path) -> Path:
        folder = tmp_path / "data"
        folder.mkdir()
        return folder

    @pytest.fixture
    def adapter_options(self, data_dir: Path) -> dict[str, Any]:
        return {"allowed_dirs": [str(data_dir)], "threads": 1, "driver_memory": "512m",
                "shuffle_partitions": 1}

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


class TestSparkFolderContract(TestSparkParquetContract):
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


class TestSparkCsvContract(TestSparkParquetContract):
    @pytest.fixture
    def place(self, data_dir: Path) -> Any:
        import pyarrow.csv as pacsv

        def place(table: Any, name: str) -> dict[str, Any]:
            path = data_dir / f"{name}.csv"
            pacsv.write_csv(table, path)
            return {"path": str(path)}

        return place
