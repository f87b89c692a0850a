"""Budgets in the client are exact decimals read from the JSON text, and still behave like the
numbers (floats) researchers compared and computed with before."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from lomas_client.budget import Budget, BudgetNumber, to_budget_number

import lomas_client as lc

if TYPE_CHECKING:
    from conftest import Scripted

# Raw JSON text as the server writes it: exact decimal numerals (a float parse of
# 0.30000000000000004 would show 0.30000000000000004; of 1e-15 shows 1e-15).
BUDGET_TEXT = ('{"initial": {"epsilon": 10, "delta": 0.0001},'
               ' "spent": {"epsilon": 2.850000004, "delta": 0.000015000000001},'
               ' "remaining": {"epsilon": 7.149999996, "delta": 0.000084999999999}}')


def _client(url: str) -> lc.Client:
    return lc.Client(url=url, token="tok", dataset_name="ds", backoff=0.01)


def test_budget_readers_are_exact_and_print_plainly(scripted: Scripted) -> None:
    scripted.push(*[(200, BUDGET_TEXT)] * 3)
    with _client(scripted.url) as client:
        spent = client.get_total_spent_budget()
        remaining = client.get_remaining_budget()
        initial = client.get_initial_budget()
    assert isinstance(spent, Budget) and isinstance(spent, dict)
    assert spent.epsilon == Decimal("2.850000004") and spent["delta"] == Decimal("0.000015000000001")
    assert repr(spent) == "Budget(epsilon=2.850000004, delta=0.000015000000001)"
    assert str(spent["delta"]) == "0.000015000000001"  # never 1.5000000001E-5
    assert initial - spent == remaining  # exact: no float residue
    assert remaining.fits(initial) and not initial.fits(remaining)


def test_comparisons_with_plain_numbers_read_as_written() -> None:
    tenth = to_budget_number(0.1)
    assert tenth == 0.1 and tenth != 0.2 and 0.1 == tenth  # noqa: SIM300
    assert tenth == Decimal("0.1") and tenth == to_budget_number("0.10")
    assert 0.05 < tenth < 0.2 and tenth <= 0.1 and tenth >= 0.1
    assert sum([tenth] * 10) == 1 and isinstance(sum([tenth] * 10), BudgetNumber)
    assert 1.0 - tenth * 10 == 0  # 0.1 ten times from 1.0 leaves exactly 0
    assert tenth + 0.2 == Decimal("0.3")  # (0.1 + 0.2 in floats is 0.30000000000000004)
    assert float(tenth) == 0.1 and f"{tenth:.3f}" == "0.100" and round(tenth, 2) == 0.1
    assert tenth != float("nan") and tenth < float("inf")
    assert {tenth: "x"}[Decimal("0.1")] == "x"
    budget = Budget(0.5, 1e-5)
    assert budget == {"epsilon": 0.5, "delta": 0.00001} and {"epsilon": 0.5, "delta": 1e-5} == budget
    assert budget == pytest.approx({"epsilon": 0.5, "delta": 1e-5})
    assert budget.as_floats() == {"epsilon": 0.5, "delta": 1e-05}
    assert json.dumps(budget, default=float) == '{"epsilon": 0.5, "delta": 1e-05}'


def test_costs_and_query_results_are_exact(scripted: Scripted) -> None:
    scripted.push((200, '{"epsilon": 0.850000004, "delta": 0.000000000000001}'),
                  (200, '{"query_id": "q1", "engine": "opendp", "dummy": false,'
                        ' "result": {"type": "table", "columns": ["m"], "dtypes": ["float"],'
                        ' "rows": [[0.30000000000000004]]},'
                        ' "epsilon": 0.850000004, "delta": 0.000000000000001,'
                        ' "remaining": {"epsilon": 9.149999996, "delta": 0.000009999999999999}}'))
    with _client(scripted.url) as client:
        cost = client.cost("opendp", {"plan": "..."})
        res = client.query("opendp", {"plan": "..."})
    assert cost == Budget("0.850000004", "1E-15") and str(cost.delta) == "0.000000000000001"
    assert res.cost == cost and (res.epsilon, res.delta) == (cost["epsilon"], cost["delta"])
    assert res.remaining == {"epsilon": Decimal("9.149999996"), "delta": Decimal("0.000009999999999999")}
    # Results are not budgets: a plain float, as before.
    value = res.result["m"][0]
    assert type(value) is not BudgetNumber and value == 0.30000000000000004
    assert json.dumps(res.raw)  # the raw answer stays plain JSON data


def test_archive_records_carry_exact_costs(scripted: Scripted) -> None:
    scripted.push((200, '{"queries": [{"id": "q1", "user": "u", "dataset": "ds",'
                        ' "engine": "opendp", "request": {"epsilon": 0.1}, "epsilon": 0.100000001,'
                        ' "delta": 0, "status": "success", "created_at": "2026-01-01T00:00:00+00:00",'
                        ' "completed_at": null, "result": {"type": "value", "value": 1.5},'
                        ' "error": null}], "next_cursor": null}'))
    with _client(scripted.url) as client:
        (record,) = client.get_previous_queries()
    assert record["epsilon"] == Decimal("0.100000001") and isinstance(record["epsilon"], BudgetNumber)
    assert record["delta"] == 0 and record["result"] == 1.5
    assert type(record["request"]["epsilon"]) is float  # the payload as sent, not a budget


def test_an_older_server_writing_floats_still_gives_exact_decimals(scripted: Scripted) -> None:
    scripted.push((200, {"initial": {"epsilon": 1.0, "delta": 1e-05},
                         "spent": {"epsilon": 0.1, "delta": 0.0},
                         "remaining": {"epsilon": 0.9, "delta": 1e-05}}))
    with _client(scripted.url) as client:
        budget = client.get_budget()
    assert budget["spent"].epsilon == Decimal("0.1") and str(budget["initial"].delta) == "0.00001"


def test_budget_numbers_can_be_passed_back_in_a_query(scripted: Scripted) -> None:
    scripted.push((200, BUDGET_TEXT), (200, '{"epsilon": 3.574999998, "delta": 0}'))
    with _client(scripted.url) as client:
        remaining = client.get_remaining_budget()
        client.smartnoise_sql.cost("SELECT COUNT(*) AS n FROM df", epsilon=remaining["epsilon"] / 2,
                                   delta=remaining.delta)
    sent = scripted.requests[1]["json"]["query"]
    assert sent["epsilon"] == 3.574999998 and sent["delta"] == 0.000084999999999
