"""The privacy audit of the SmartNoise-SQL engine with its built-in catalogue (see engine_audit.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("lomas_engine_smartnoise_sql")

from engine_audit import EngineAudit  # noqa: E402


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
