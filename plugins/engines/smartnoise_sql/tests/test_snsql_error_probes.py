"""No information through database errors, on every target: a query whose row-level expression
would raise for one row (a division by zero, a cast that fails, a math domain error) answers
exactly alike -- same outcome, same columns, same number of rows -- on two neighbouring datasets,
one with that row and one without."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from snsql_targets import TARGETS, info_for, probe_outcome, target_handle

from lomas_core.data import DataHandle
from lomas_core.metadata import Metadata

METADATA = Metadata.model_validate({
    "max_ids": 1, "rows": 300, "censor_dims": False,
    "columns": {
        "age": {"type": "int", "lower": 0, "upper": 100},
        "code": {"type": "string"},
        "x": {"type": "float", "lower": -10.0, "upper": 10.0},
        "grp": {"type": "string", "categories": ["a", "b"], "public_keys": True},
    },
})

PROBES = [
    "SELECT COUNT(*) AS n FROM df WHERE 1 / (age - 37) > 0",
    "SELECT COUNT(*) AS n FROM df WHERE 10 % (age - 37) = 1",
    "SELECT SUM(age / (age - 37)) AS s FROM df",
    "SELECT COUNT(*) AS n FROM df WHERE CAST(code AS INTEGER) > 0",
    "SELECT grp, COUNT(*) AS n FROM df WHERE CAST(code AS INTEGER) > 0 GROUP BY grp",
    "SELECT COUNT(*) AS n FROM df WHERE SQRT(x) > 1",
    "SELECT COUNT(*) AS n FROM df WHERE LN(x) > 0",
    "SELECT COUNT(*) AS n FROM df WHERE LOG10(x + 3) > 0",
    "SELECT COUNT(*) AS n FROM df WHERE ASIN(x) > 0",
    "SELECT COUNT(*) AS n FROM df WHERE POWER(x, 0.5) > 1",
    "SELECT AVG(x / (age - 37)) AS m FROM df",
]


def _tables() -> tuple[Any, Any]:
    """Neighbours: ``with_row`` has one extra person, for whom every probe would raise."""
    import pyarrow as pa

    n = 200
    base = {"age": [20 + i % 15 for i in range(n)],  # never 37
            "code": [str(i % 9 + 1) for i in range(n)],
            "x": [1.0 + (i % 7) for i in range(n)],  # positive, at most 7
            "grp": ["a" if i % 3 else "b" for i in range(n)]}
    without = pa.table(base)
    with_row = pa.table({"age": [*base["age"], 37], "code": [*base["code"], "not a number"],
                         "x": [*base["x"], -5.0], "grp": [*base["grp"], "a"]})
    return with_row, without


def _outcome(engine: Any, sql: str, handle: DataHandle, target: str) -> tuple[Any, ...]:
    query = engine.parse({"sql": sql, "epsilon": 1.0, "delta": 1e-5})
    return probe_outcome(engine, query, handle, info_for(target, "probe", METADATA))


@pytest.mark.parametrize("target", TARGETS)
def test_error_probes_answer_alike_on_neighbours(engine: Any, target: str, tmp_path: Path,
                                                 request: pytest.FixtureRequest) -> None:
    with_row, without = _tables()
    a = target_handle(request, target, "with_row", with_row, METADATA, tmp_path)
    b = target_handle(request, target, "without", without, METADATA, tmp_path)
    answered = 0
    for sql in PROBES:
        first, second = _outcome(engine, sql, a, target), _outcome(engine, sql, b, target)
        assert first == second, (sql, first, second)
        assert first[0] != "failed", (sql, first)  # a probe is refused free, or answered
        answered += first[0] == "answered"
    assert answered >= 5
