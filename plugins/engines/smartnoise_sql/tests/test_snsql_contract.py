"""The shared engine contract, run on the smartnoise_sql engine."""

from __future__ import annotations

from typing import Any

import pytest

from lomas_core.testing.engine_contract import EngineContract


class TestSmartnoiseSQLContract(EngineContract):
    engine_name = "smartnoise_sql"
    heavy_modules = ("snsql", "opendp", "pandas", "duckdb")

    @pytest.fixture
    def valid_payloads(self) -> list[dict[str, Any]]:
        return [
            {"sql": "SELECT COUNT(*) AS n FROM df", "epsilon": 1.0, "delta": 1e-5},
            {"sql": 'SELECT "group", COUNT(*) AS n, AVG(income) AS m FROM contract '
                    'WHERE age > 10 GROUP BY "group"', "epsilon": 0.5, "delta": 1e-5},
            {"sql": "SELECT flag, SUM(age) AS s FROM df GROUP BY flag", "epsilon": 1.0,
             "delta": 1e-5, "mechanisms": {"sum_int": "laplace"}, "postprocess": False},
        ]

    @pytest.fixture
    def invalid_payloads(self) -> list[dict[str, Any]]:
        base = {"epsilon": 1.0, "delta": 1e-5}
        return [
            {**base, "sql": "SELECT COUNT(*) FROM sqlite_master"},
            {**base, "sql": "SELECT COUNT(*) FROM df; DROP TABLE df"},
            {**base, "sql": "SELECT wingspan FROM df"},
            {**base, "sql": "SELECT COUNT(*) FROM df", "mechanisms": {"count": "exponential"}},
            {**base, "sql": "SELECT COUNT(*) FROM df", "sql_extra": 1},
            {**base, "sql": "SELECT COUNT(*) FROM df WHERE age > " + "1" * 30_000},
        ]
