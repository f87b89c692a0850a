# mypy: disable-error-code="attr-defined,union-attr"
"""The shape check catches planted engine bugs (query_failed, charge kept, WARNING, no rows), and
the DuckDB connection is locked down."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from snsql_testdata import METADATA, make_frame, make_table

from lomas_core.budget import Budget
from lomas_core.metadata import Metadata
from lomas_core.testing.harness import LomasHarness

ENGINE = "smartnoise_sql"
GRANT = (100.0, 1e-2)
THRESHOLDED = {**METADATA, "censor_dims": True, "columns": {
    **METADATA["columns"], "grp": {"type": "string", "categories": ["a", "b", "c"]}}}


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LomasHarness]:
    h = LomasHarness(tmp_path_factory.mktemp("snsql-shape"), engines={ENGINE: {}})
    h.add_dataset("people", make_frame(2000), METADATA)
    h.add_dataset("thresholded", make_frame(2000), THRESHOLDED)
    yield h
    h.close()


def _extra_row(columns: list[str], rows: list[Any]) -> tuple[list[str], list[Any]]:
    return columns, [*rows, list(rows[0])]  # a second row for the first group


def _foreign_key(columns: list[str], rows: list[Any]) -> tuple[list[str], list[Any]]:
    return columns, [["zzz", *rows[0][1:]], *rows[1:]]  # a key that was never declared


def _extra_column(columns: list[str], rows: list[Any]) -> tuple[list[str], list[Any]]:
    return [*columns, "leak"], [[*row, 42.0] for row in rows]


def _second_total(columns: list[str], rows: list[Any]) -> tuple[list[str], list[Any]]:
    return columns, [*rows, [123]]


BUGS: dict[str, tuple[Callable[..., Any], str, str]] = {
    "extra row, public keys": (_extra_row, "people", "SELECT grp, COUNT(*) AS n FROM df GROUP BY grp"),
    "extra row, thresholded": (_extra_row, "thresholded",
                               "SELECT grp, COUNT(*) AS n FROM df GROUP BY grp"),
    "undeclared key": (_foreign_key, "people", "SELECT grp, COUNT(*) AS n FROM df GROUP BY grp"),
    "undeclared key, thresholded": (_foreign_key, "thresholded",
                                    "SELECT grp, COUNT(*) AS n FROM df GROUP BY grp"),
    "extra column": (_extra_column, "people", "SELECT grp, AVG(age) AS m FROM df GROUP BY grp"),
    "two rows without GROUP BY": (_second_total, "people", "SELECT COUNT(*) AS n FROM df"),
}


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_planted_engine_bug_is_query_failed_charged_and_logged(
        harness: LomasHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        bug: str) -> None:
    """A test engine variant whose execution step returns rows the query cannot produce."""
    from lomas_engine_smartnoise_sql.engine import SmartnoiseSQLEngine

    planted, dataset, sql = BUGS[bug]
    original = SmartnoiseSQLEngine._execute

    def buggy(self: Any, reader: Any, text: str, postprocess: bool) -> Any:
        return planted(*original(self, reader, text, postprocess))

    user = "b_" + "".join(ch for ch in bug if ch.isalnum())
    token = harness.add_user(user, grant={dataset: GRANT})
    body = {"engine": ENGINE, "query": {"sql": sql, "epsilon": 1.0, "delta": 1e-5}}
    with harness.client(token) as c:
        cost = c.post(f"/v1/datasets/{dataset}/cost", json=body).json()
        ok = c.post(f"/v1/datasets/{dataset}/query", json=body)
        assert ok.status_code == 200, ok.text  # the real engine answers it
        monkeypatch.setattr(SmartnoiseSQLEngine, "_execute", buggy)
        with caplog.at_level(logging.WARNING):
            r = c.post(f"/v1/datasets/{dataset}/query", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "query_failed"
    assert "rows" not in r.text and "zzz" not in r.text and "leak" not in r.text
    assert any("shape check" in rec.getMessage() and rec.levelno == logging.WARNING
               for rec in caplog.records)
    one = Budget.of(cost["epsilon"], cost["delta"])
    assert harness.grant(user, dataset).spent == one + one  # the failed query's charge stays


def test_duplicate_exact_rows_from_the_database_are_caught(
        harness: LomasHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database answering two rows for one group (as a UNION would) never reaches noise."""
    from lomas_engine_smartnoise_sql import backend

    original = backend.DuckDBDatabase.fetch

    def doubled(self: Any, statement: Any) -> list[Any]:
        names, *rows = original(self, statement)
        return [names, *rows, rows[0]]

    token = harness.add_user("dupdb", grant={"thresholded": GRANT})
    monkeypatch.setattr(backend.DuckDBDatabase, "fetch", doubled)
    body = {"engine": ENGINE, "query": {"sql": "SELECT grp, COUNT(*) AS n FROM df GROUP BY grp",
                                        "epsilon": 1.0, "delta": 1e-5}}
    with harness.client(token) as c:
        r = c.post("/v1/datasets/thresholded/query", json=body)
    assert r.status_code == 422 and r.json()["error"]["code"] == "query_failed", r.text
    assert harness.grant("dupdb", "thresholded").spent.epsilon > 0


def test_unit_checks() -> None:
    from lomas_engine_smartnoise_sql.policy import KeyPlan
    from lomas_engine_smartnoise_sql.shape import (
        ShapeError,
        check_answer,
        check_exact,
        complete_public,
    )

    meta = Metadata.model_validate(METADATA)
    plan = KeyPlan(mode="public", keys=("grp",), combinations=(("a",), ("b",), ("c",)), outputs=2,
                   key_outputs=((0, "grp"),))
    names = ["keycount", "grp"]
    exact = check_exact(plan, names, names, ["grp"], [(5, "b"), (7, None)])
    rows = complete_public(plan, exact, [(5, "b"), (7, None)])
    assert rows == [(0, "a"), (5, "b"), (0, "c")]  # declared order, null dropped, absent filled
    check_answer(plan, meta, exact, ["grp", "n"], [["a", 1], ["b", 4], ["c", 0]], ((0, "grp"),), 2)
    with pytest.raises(ShapeError):
        check_exact(plan, names, names, ["grp"], [(5, "b"), (6, "b")])
    with pytest.raises(ShapeError):
        check_exact(plan, ["keycount", "other"], names, ["grp"], [(5, "b")])
    for bad in ([["a", 1], ["a", 2]], [["d", 1]], [["a", 1, 2]], [["a", 1]] * 4):
        with pytest.raises(ShapeError):
            check_answer(plan, meta, exact, ["grp", "n"], bad, ((0, "grp"),), 2)


def test_duckdb_is_locked_down() -> None:
    import duckdb
    from lomas_engine_smartnoise_sql.backend import DuckDBDatabase

    database = DuckDBDatabase(make_table(100), Metadata.model_validate(METADATA))
    con = database._con
    try:
        settings = dict(con.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access', "
            "'lock_configuration', 'autoload_known_extensions', 'autoinstall_known_extensions', "
            "'allow_community_extensions')").fetchall())
        assert settings == {"enable_external_access": "false", "lock_configuration": "true",
                            "autoload_known_extensions": "false",
                            "autoinstall_known_extensions": "false",
                            "allow_community_extensions": "false"}
        tables = con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        views = con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
        assert tables == [("df",)] and views == []
        for statement in ("SET enable_external_access = true", "SET lock_configuration = false",
                          "INSTALL httpfs", "LOAD httpfs", "SELECT * FROM read_csv('/etc/passwd')"):
            with pytest.raises(duckdb.Error):
                con.execute(statement)
    finally:
        database.close()
