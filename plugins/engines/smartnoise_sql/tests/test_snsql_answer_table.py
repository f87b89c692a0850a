"""The answer table written without pandas is exactly the one pandas writes."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest
from lomas_engine_smartnoise_sql.engine import answer_table

from lomas_core import results

CASES: list[tuple[list[str], list[list[Any]]]] = [
    (["n"], [[998]]),
    (["n"], [[-3], [0], [2**62]]),
    (["g", "m"], [["a", 1.5], ["b", -0.0], ["c", 2.0]]),
    (["m"], [[float("nan")], [float("inf")], [1.0]]),
    (["g", "n", "s"], [["a", 1, 2.5], ["b", 2, 3.5]]),
    (["b"], [[True], [False]]),
    (["n"], [[1], [None]]),  # a null: pandas makes floats of the ints
    (["n"], [[1], [2.5]]),  # mixed
    (["n"], [[True], [1]]),  # bool and int
    (["n"], [[2**63]]),  # beyond 64 bits: pandas keeps objects
    (["n"], [[-(2**63) - 1]]),
    (["n", "s"], []),  # no rows
    (["g"], [[None], ["a"]]),
]


@pytest.mark.parametrize(("columns", "rows"), CASES)
def test_same_table_as_pandas(columns: list[str], rows: list[list[Any]]) -> None:
    expected = results.table_from_pandas(pd.DataFrame(rows, columns=columns))
    got = answer_table(columns, [list(r) for r in rows])
    assert json.dumps(got, allow_nan=False) == json.dumps(expected, allow_nan=False)
    assert [[type(v) for v in row] for row in got["rows"]] == \
        [[type(v) for v in row] for row in expected["rows"]]


def test_repeated_names_fail_as_with_pandas() -> None:
    with pytest.raises(AttributeError):
        results.table_from_pandas(pd.DataFrame([[1, 2.0]], columns=["n", "n"]))
    with pytest.raises(AttributeError):
        answer_table(["n", "n"], [[1, 2.0]])
