"""The run-time DuckDB parse check remembers only verdicts that passed, keyed by the exact text."""

from __future__ import annotations

from typing import Any

import pytest
from lomas_engine_smartnoise_sql import render
from lomas_engine_smartnoise_sql.render import Statement, StatementRefused, parser_connection, verify


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    original = render._parse

    def spy(con: Any, text: str) -> dict[str, Any]:
        seen.append(text)
        return original(con, text)

    monkeypatch.setattr(render, "_parse", spy)
    monkeypatch.setattr(render, "_verified", type(render._verified)())
    return seen


def test_a_verified_statement_is_not_parsed_again_and_any_other_text_is(parses: list[str]) -> None:
    con, cols = parser_connection(), ["x", "g"]
    ok = Statement("SELECT COUNT(*) AS n FROM df WHERE g = 'a'", ("a",))
    verify(con, ok, cols)
    verify(con, ok, cols)
    assert parses == [ok.text]
    near = Statement(ok.text + " ", ("a",))
    verify(con, near, cols)
    with pytest.raises(StatementRefused):
        verify(con, ok, ["x"])  # other columns: checked again (and g is not one of them)
    assert parses == [ok.text, near.text, ok.text]
    with pytest.raises(StatementRefused):
        verify(con, Statement(ok.text, ("b",)), cols)  # other literals: checked, refused


def test_a_refusal_is_never_remembered(parses: list[str]) -> None:
    con = parser_connection()
    bad = Statement("SELECT COUNT(*) FROM df -- x", ())
    for _ in range(2):
        with pytest.raises(StatementRefused):
            verify(con, bad, ["x"])
    assert len(render._verified) == 0
    evil = Statement("SELECT COUNT(*) AS n FROM df UNION ALL SELECT 1", ())
    for _ in range(2):
        with pytest.raises(StatementRefused):
            verify(con, evil, ["x"])
    assert parses.count(evil.text) == 2
