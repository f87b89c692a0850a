"""Overflow tells nothing, on every target: queries whose row-level expression (WHERE) or
aggregate overflows for one row -- 64-bit integers wrapping or raising, doubles becoming
infinite or NaN, casts that do not fit -- answer exactly alike on two neighbouring datasets (same
outcome, columns, number of rows, and the same cells null), and the exact sums that the noise is
added to never wrap.

Spark runs with ANSI mode off, where ``+ - *`` on integers wrap, ``CAST`` wraps or saturates and
``SUM`` of a ``BIGINT`` wraps; DuckDB raises (``TRY`` makes a row's value NULL, but the aggregate
query runs outside it); PostgreSQL computes in ``numeric``."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from snsql_targets import TARGETS, info_for, probe_outcome, target_handle

from lomas_core.data import DataHandle
from lomas_core.metadata import Metadata

#: ``huge``: 200 rows sum to just under 2**63, the neighbour's 201 to just over. SmartNoise-SQL
#: accepts a noise scale up to 1e7, so such bounds need a large epsilon (nothing caps it).
HUGE = 46 * 10**15
EPSILON = 1e10
METADATA = Metadata.model_validate({
    "max_ids": 1, "rows": 300, "censor_dims": False,
    "columns": {
        "age": {"type": "int", "lower": 0, "upper": 100},
        "huge": {"type": "int", "lower": HUGE, "upper": HUGE + 1000},
        "code": {"type": "string"},
        "x": {"type": "float", "lower": -10.0, "upper": 10.0},
        "grp": {"type": "string", "categories": ["a", "b"], "public_keys": True},
    },
})

#: WHERE: integer overflow (wraps on ANSI-off Spark, raises on DuckDB).
INTEGER_WHERE = [
    "SELECT COUNT(*) AS n FROM df WHERE age * 4 > 0",
    "SELECT COUNT(*) AS n FROM df WHERE age + 9223372036854775807 > 0",
    "SELECT grp, COUNT(*) AS n FROM df WHERE 0 - age * 2 - age * 2 < 0 GROUP BY grp",
]
#: WHERE: doubles leaving the range (Infinity, then NaN), and casts that do not fit (wrap or
#: saturate with ANSI off).
DOUBLE_AND_CAST_WHERE = [
    "SELECT COUNT(*) AS n FROM df WHERE x * x * x > 1",
    "SELECT COUNT(*) AS n FROM df WHERE x * x - x * x = 0",
    "SELECT COUNT(*) AS n FROM df WHERE 1 / (x * x * x) > 0",
    "SELECT grp, COUNT(*) AS n FROM df WHERE CAST(code AS INTEGER) > 0 GROUP BY grp",
    "SELECT COUNT(*) AS n FROM df WHERE CAST(x AS INTEGER) > 0",
    "SELECT COUNT(*) AS n FROM df WHERE CAST(age AS INTEGER) > 0",
]
#: Aggregates over expressions and GROUP BY expressions: refused at cost, on every target.
REFUSED = [
    "SELECT SUM(age * 2147483647) AS s FROM df",
    "SELECT CAST(x AS INTEGER) AS k, COUNT(*) AS n FROM df GROUP BY CAST(x AS INTEGER)",
]
PROBES = [
    *INTEGER_WHERE,
    # beyond DECIMAL(38,0) on Spark (NULL), within numeric on PostgreSQL
    "SELECT COUNT(*) AS n FROM df WHERE age * 2147483647 * 2147483647 * 2147483647 > 0",
    *DOUBLE_AND_CAST_WHERE,
    # aggregates: clamped values whose sum or square leaves 64-bit integers
    "SELECT SUM(huge) AS s FROM df -- huge",
    "SELECT grp, SUM(huge) AS s, AVG(x) AS m FROM df GROUP BY grp -- huge",
    "SELECT AVG(huge) AS m, VAR(age) AS v FROM df -- huge",
    "SELECT SUM(x) AS s, STDDEV(age) AS sd FROM df WHERE x * x > 4",
    *REFUSED,
]


def _tables() -> tuple[Any, Any]:
    """Neighbours: ``with_row`` has one extra person whose values overflow every probe."""
    import pyarrow as pa

    n = 200
    base = {"age": [20 + i % 15 for i in range(n)],
            "huge": [HUGE + i for i in range(n)],
            "code": [f"{i % 9 + 1}.0" if i % 10 == 0 else str(i % 9 + 1) for i in range(n)],
            "x": [1.0 + (i % 7) for i in range(n)],
            "grp": ["a" if i % 3 else "b" for i in range(n)]}
    extra = {"age": 2**62, "huge": HUGE + 1000, "code": "99999999999", "x": 1e300,
             "grp": "a"}
    without = pa.table(base)
    with_row = pa.table({k: [*v, extra[k]] for k, v in base.items()})
    return with_row, without


def _parse(engine: Any, probe: str) -> Any:
    """A probe's query; those marked ``-- huge`` with :data:`EPSILON`."""
    sql, _, mark = probe.partition(" -- ")
    epsilon = EPSILON if mark == "huge" else 1.0
    return engine.parse({"sql": sql, "epsilon": epsilon, "delta": 1e-5})


def _outcome(engine: Any, sql: str, handle: DataHandle, target: str) -> tuple[Any, ...]:
    return probe_outcome(engine, _parse(engine, sql), handle, info_for(target, "overflow", METADATA))


@pytest.fixture(scope="module")
def neighbours(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
               ) -> dict[str, tuple[DataHandle, DataHandle]]:
    """Per target, lazily: (with_row, without) opened there."""
    return {}


def _pair(neighbours: dict[str, Any], request: pytest.FixtureRequest, target: str,
          folder: Path) -> tuple[DataHandle, DataHandle]:
    if target not in neighbours:
        with_row, without = _tables()
        neighbours[target] = (target_handle(request, target, "ovf_with_row", with_row, METADATA,
                                            folder),
                              target_handle(request, target, "ovf_without", without, METADATA,
                                            folder))
    return neighbours[target]  # type: ignore[no-any-return]


@pytest.mark.parametrize("target", TARGETS)
def test_overflow_probes_answer_alike_on_neighbours(
        engine: Any, target: str, neighbours: dict[str, Any],
        tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> None:
    a, b = _pair(neighbours, request, target, tmp_path_factory.mktemp(f"ovf-{target}"))
    answered = 0
    for sql in PROBES:
        first, second = _outcome(engine, sql, a, target), _outcome(engine, sql, b, target)
        assert first == second, (sql, first, second)
        assert first[0] != "failed", (sql, first)  # refused free, or answered
        if first[0] == "answered":
            answered += 1
            assert not any(any(row) for row in first[3]), (sql, "a null cell", first)
    assert answered >= len(PROBES) - 5  # PostgreSQL refuses the three casts
    for sql in REFUSED:
        assert _outcome(engine, sql, a, target)[0] == "refused at cost", sql


def _exact_rows(engine: Any, sql: str, handle: DataHandle, target: str,
                monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The exact rows the target returned for ``sql`` (what the noise is then added to)."""
    from lomas_engine_smartnoise_sql import backend

    seen: list[Any] = []
    for cls in (backend.DuckDBDatabase, backend.TargetDatabase):
        def spy(self: Any, statement: Any, _original: Any = cls.fetch) -> list[Any]:
            rows = _original(self, statement)
            seen.append(rows)
            return rows  # type: ignore[no-any-return]

        monkeypatch.setattr(cls, "fetch", spy)
    engine.run(_parse(engine, sql), handle, info_for(target, "overflow", METADATA))
    assert len(seen) == 1
    names, *rows = seen[0]
    return [dict(zip(names, row, strict=True)) for row in rows]


@pytest.mark.parametrize("target", TARGETS)
def test_exact_integer_sums_do_not_wrap(
        engine: Any, target: str, neighbours: dict[str, Any],
        tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch) -> None:
    with_row, _ = _tables()
    a, _ = _pair(neighbours, request, target, tmp_path_factory.mktemp(f"ovf-{target}"))
    age = [min(v, 100) for v in with_row.column("age").to_pylist()]  # clamped
    huge = with_row.column("huge").to_pylist()
    (row,) = _exact_rows(engine, "SELECT SUM(huge) AS s, VAR(age) AS v FROM df -- huge", a, target,
                         monkeypatch)
    sums = {name.lower(): value for name, value in row.items()}
    squares = next(v for k, v in sums.items() if k.startswith("sum_alias"))
    assert sum(huge) > 2**63
    assert Decimal(sums["sum_huge"]) == sum(huge)
    assert Decimal(sums["sum_age"]) == sum(age)
    assert Decimal(squares) == sum(v * v for v in age)


def _rows(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(repr(sorted(row.items())) for row in rows)


def _int64(value: int) -> int | None:
    """``value`` as 64-bit arithmetic leaves it: None (NULL) when it does not fit."""
    return value if -(2**63) <= value < 2**63 else None


def _lt0(value: int | None) -> bool:
    return value is not None and value < 0


def _gt0(value: int | None) -> bool:
    return value is not None and value > 0


@pytest.mark.parametrize("target", ["postgresql", "spark"])
def test_integer_overflow_neither_wraps_nor_fails(
        engine: Any, target: str, neighbours: dict[str, Any],
        tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Integer ``+ - *`` in WHERE: PostgreSQL computes exactly (``numeric``); on Spark an
    overflowing row is NULL (``try_multiply``...), as under DuckDB's ``TRY``, never wrapped."""
    a, _ = _pair(neighbours, request, target, tmp_path_factory.mktemp(f"ovf-{target}"))
    with_row, _ = _tables()
    ages, groups = with_row.column("age").to_pylist(), with_row.column("grp").to_pylist()
    exact = target == "postgresql"

    def checked(value: int) -> int | None:
        return value if exact else _int64(value)

    def minus_4age(age: int) -> int | None:  # 0 - age * 2 - age * 2, step by step
        twice = checked(age * 2)
        first = None if twice is None else checked(0 - twice)
        return None if first is None else checked(first - twice)

    expected = [
        [{"count_star": sum(_gt0(checked(age * 4)) for age in ages)}],
        [{"count_star": sum(_gt0(checked(age + 2**63 - 1)) for age in ages)}],
        [{"grp": g, "count_star": sum(_lt0(minus_4age(age)) and grp == g
                                      for age, grp in zip(ages, groups, strict=True))}
         for g in ("a", "b")],
    ]
    for sql, rows in zip(INTEGER_WHERE, expected, strict=True):
        got = [{k.lower(): int(v) if k.lower() == "count_star" else v for k, v in row.items()}
               for row in _exact_rows(engine, sql, a, target, monkeypatch)]
        assert _rows(got) == _rows(rows), sql


@pytest.mark.parametrize("target", ["duckdb", "spark"])
def test_doubles_and_casts_as_in_memory(
        engine: Any, target: str, neighbours: dict[str, Any],
        tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Doubles follow IEEE (an overflow is infinite, then NaN) and a cast to INTEGER that does
    not fit is NULL while ``'4.0'`` converts (``TRY_CAST``), as in memory: the exact counts
    agree."""
    a, _ = _pair(neighbours, request, target, tmp_path_factory.mktemp(f"ovf-{target}"))
    memory, _ = _pair(neighbours, request, "memory", tmp_path_factory.mktemp("ovf-memory"))
    for sql in DOUBLE_AND_CAST_WHERE:
        expected = _exact_rows(engine, sql, memory, "memory", monkeypatch)
        assert _rows(_exact_rows(engine, sql, a, target, monkeypatch)) == _rows(expected), sql
