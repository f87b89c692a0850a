"""Costs are charged rounded up to a stated precision; budgets print as plain exact decimals."""

from __future__ import annotations

from decimal import Decimal

from lomas_core.budget import COST_QUANTUM, Budget, format_decimal


def test_costs_round_up_never_down() -> None:
    exact = Budget.of(2.8500000032596294, 1.4999999999999999e-05)
    charged = exact.rounded_up()
    assert charged == Budget(Decimal("2.850000004"), Decimal("0.000015"))
    assert charged.as_strings() == {"epsilon": "2.850000004", "delta": "0.000015"}
    assert Budget.of(10, 0).rounded_up().as_strings() == {"epsilon": "10", "delta": "0"}
    assert exact.fits(charged)
    assert Budget.of(0.5, 0).rounded_up() == Budget.of("0.5", "0")
    tiny = Budget.of(9.992007221626409e-16, 1e-17).rounded_up()
    assert tiny == Budget(COST_QUANTUM[0], COST_QUANTUM[1])  # a positive cost never rounds to 0


def test_rounded_sums_survive_a_json_double() -> None:
    """Client (floats over JSON) and CLI (decimals) show the same digits."""
    costs = [Budget.of(2.8500000032596294, 1.4999999999999999e-05).rounded_up(),
             Budget.of(0.1, 1e-6).rounded_up(), Budget.of(0.333333333333333, 0).rounded_up()]
    spent = Budget.of(0, 0)
    for cost in costs:
        spent = spent + cost
        for part in (spent.epsilon, spent.delta):
            assert Decimal(repr(float(part))) == part


def test_format_decimal_is_plain() -> None:
    assert format_decimal(Decimal("9.992007221626409E-16")) == "0.0000000000000009992007221626409"
    assert format_decimal(Decimal("1E+1")) == "10"
    assert Budget.of("0.5", "1.5E-5").display() == "epsilon=0.5 delta=0.000015"
