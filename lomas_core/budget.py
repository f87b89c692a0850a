"""Exact privacy-budget arithmetic.

Budgets are :class:`decimal.Decimal` values, never floats. A float coming from a library or a
request is converted through its shortest ``repr`` (``0.1`` becomes ``Decimal("0.1")``), so ten
charges of 0.1 against 1.0 leave exactly 0. Stores persist the decimal text (or Decimal128) and
compare decimals, never floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, Context, Decimal, localcontext
from typing import Any

__all__ = ["Budget", "to_decimal", "format_decimal", "DECIMAL_CONTEXT", "COST_QUANTUM"]

#: Precision for every budget operation: well above the 17 significant digits of a double, and
#: within Decimal128's 34 so that MongoDB stores what SQLite stores.
DECIMAL_CONTEXT = Context(prec=34)

#: The precision of every charge: an engine's exact cost is rounded *up* to a multiple of these
#: (never down, so a charge is never less than the cost) before it is shown or charged. Engines
#: hand back floats such as 2.8500000032596294; charged as 2.850000004 (epsilon, 9 places) and
#: deltas to 15 places, budgets stay short exact decimals that also survive a round trip through
#: a JSON double unchanged, so client and CLI show the same digits.
COST_QUANTUM = (Decimal("1e-9"), Decimal("1e-15"))


def format_decimal(value: Decimal) -> str:
    """``value`` as a plain decimal numeral: ``0.000015``, never ``1.5E-5``."""
    return format(value, "f")


def to_decimal(value: Any) -> Decimal:
    """Convert a float, int, str or Decimal to an exact, finite, non-negative Decimal.

    Raises:
        ValueError: for NaN, infinities, negative values and anything not a number.
    """
    if isinstance(value, bool):
        raise ValueError("a budget must be a number, not a boolean")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("a budget must be finite")
        result = Decimal(repr(value))
    elif isinstance(value, (int, str)):
        try:
            result = Decimal(value)
        except ArithmeticError as exc:
            raise ValueError(f"not a number: {value!r}") from exc
    else:
        raise ValueError(f"a budget must be a number, not {type(value).__name__}")
    if not result.is_finite():
        raise ValueError("a budget must be finite")
    if result < 0:
        raise ValueError("a budget cannot be negative")
    with localcontext(DECIMAL_CONTEXT):
        return +result if result != 0 else Decimal(0)


def _canonical(value: Decimal) -> Decimal:
    """Without trailing zeros (``0.250000000`` -> ``0.25``, ``0E-15`` -> ``0``), never exponent form
    for whole numbers."""
    with localcontext(DECIMAL_CONTEXT):
        if value == 0:
            return Decimal(0)
        reduced = value.normalize()
        return reduced.quantize(Decimal(1)) if reduced.as_tuple().exponent > 0 else reduced  # type: ignore[operator]


@dataclass(frozen=True, slots=True)
class Budget:
    """An (epsilon, delta) pair of exact decimals. Used for costs, initial, spent and remaining."""

    epsilon: Decimal
    delta: Decimal = Decimal(0)

    @classmethod
    def of(cls, epsilon: Any, delta: Any = 0) -> Budget:
        """Build a budget from floats, ints, strings or decimals (see :func:`to_decimal`)."""
        return cls(to_decimal(epsilon), to_decimal(delta))

    def __add__(self, other: Budget) -> Budget:
        with localcontext(DECIMAL_CONTEXT):
            return Budget(self.epsilon + other.epsilon, self.delta + other.delta)

    def __sub__(self, other: Budget) -> Budget:
        """Difference; components may become negative (callers compare with :meth:`fits`)."""
        with localcontext(DECIMAL_CONTEXT):
            return Budget(self.epsilon - other.epsilon, self.delta - other.delta)

    def fits(self, within: Budget) -> bool:
        """True when both components of ``self`` are at most those of ``within``."""
        return self.epsilon <= within.epsilon and self.delta <= within.delta

    def rounded_up(self) -> Budget:
        """Both components rounded up to :data:`COST_QUANTUM` (how every cost is charged)."""
        with localcontext(DECIMAL_CONTEXT):
            return Budget(_canonical(self.epsilon.quantize(COST_QUANTUM[0], rounding=ROUND_CEILING)),
                          _canonical(self.delta.quantize(COST_QUANTUM[1], rounding=ROUND_CEILING)))

    def is_zero(self) -> bool:
        return self.epsilon == 0 and self.delta == 0

    def as_floats(self) -> dict[str, float]:
        """JSON form for responses: ``{"epsilon": float, "delta": float}``."""
        return {"epsilon": float(self.epsilon), "delta": float(self.delta)}

    def display(self) -> str:
        """``epsilon=0.5 delta=0.000015`` for people (plain exact decimals)."""
        return f"epsilon={format_decimal(self.epsilon)} delta={format_decimal(self.delta)}"

    def as_strings(self) -> dict[str, str]:
        """Exact JSON form for storage: ``{"epsilon": "0.1", "delta": "0"}``."""
        return {"epsilon": str(self.epsilon), "delta": str(self.delta)}

