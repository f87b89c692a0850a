"""The privacy audit of the SmartNoise-SQL engine with its built-in catalogue (see engine_audit.py)."""

from __future__ import annotations

import os
from typing import Any

import pytest

pytest.importorskip("lomas_engine_smartnoise_sql")

from engine_audit import EngineAudit  # noqa: E402

PG_SECRET_ENV = "LOMAS_AUDIT_TEST_PG"


class TestSmartnoiseSQLAudit(EngineAudit):
    engine = "smartnoise_sql"
    fast_samples = 250
    fast_dummy_samples = 60
    full_samples = 1000  # SmartNoise-SQL answers ~40 queries a second here: ~15 minutes


class TestSmartnoiseSQLOnDuckDBSourceAudit(TestSmartnoiseSQLAudit):
    """The same audit with both datasets on the ``duckdb`` push-down source (run where they lie)."""

    adapter = "duckdb"

    @pytest.fixture(scope="class", autouse=True)
    def _source_installed(self) -> None:
        pytest.importorskip("lomas_source_duckdb")


class TestSmartnoiseSQLOnPostgresSourceAudit(TestSmartnoiseSQLAudit):
    """The same audit with both datasets in a real PostgreSQL, through the ``postgresql`` source."""

    adapter = "postgresql"

    @pytest.fixture(scope="class")
    def placement(self, lomas_postgres: Any) -> Any:
        pytest.importorskip("lomas_source_postgresql")
        from lomas_core.models import DatasetDescription
        from lomas_core.testing.privacy_audit.auditor import DATASET, Placement
        from lomas_testsupport.postgres import load_table

        os.environ[PG_SECRET_ENV] = lomas_postgres.reader_dsn

        def put(harness: Any, side: str, table: Any, metadata: Any) -> None:
            name = "audit_d" if side == "D" else "audit_d_prime"
            load_table(lomas_postgres.dsn(), name, table, reader="lomas_reader")
            harness.add_dataset_description(DatasetDescription(
                name=DATASET, adapter="postgresql", metadata=metadata,
                options={"credentials": "pg", "table": name}))

        return Placement(config={
            "adapters": {"postgresql": {}},
            "secrets": {"pg": {"env": PG_SECRET_ENV, "adapters": ["postgresql"],
                               "allowed_hosts": ["127.0.0.1"]}}}, put=put)


@pytest.mark.slow
class TestSmartnoiseSQLOnSparkSourceAudit(TestSmartnoiseSQLAudit):
    """The same audit with both datasets as Parquet answered by the ``spark`` source (local[1]).

    Slow (about 140 s on 2 cores: every release is a Spark job), so behind ``--run-slow``.
    """

    adapter = "spark"

    @pytest.fixture(scope="class")
    def placement(self, tmp_path_factory: pytest.TempPathFactory) -> Any:
        pytest.importorskip("lomas_source_spark")
        import shutil

        if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
            pytest.skip("the spark source needs a Java runtime (Java 17)")
        import pyarrow.parquet as pq
        from lomas_source_spark.session import spark_session

        from lomas_core.models import DatasetDescription
        from lomas_core.testing.privacy_audit.auditor import DATASET, Placement

        # Started here, on the test's main thread: launched from a thread of the in-process
        # server under pytest, the forked launcher of the JVM crashes before it runs.
        spark_session("local[1]", "512m", 1)
        folder = tmp_path_factory.mktemp("audit-spark")

        def put(harness: Any, side: str, table: Any, metadata: Any) -> None:
            path = folder / ("audit_d.parquet" if side == "D" else "audit_d_prime.parquet")
            pq.write_table(table, path)
            harness.add_dataset_description(DatasetDescription(
                name=DATASET, adapter="spark", metadata=metadata, options={"path": str(path)}))

        return Placement(config={"adapters": {"spark": {
            "allowed_dirs": [str(folder)], "threads": 1, "driver_memory": "512m",
            "shuffle_partitions": 1}}}, put=put)
