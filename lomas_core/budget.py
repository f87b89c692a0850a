"""Exact privacy-budget arithmetic.

Budgets are :class:`decimal.Decimal` values, never floats. A float coming from a library or a
request is converted through its shortest ``repr`` (``0.1`` becomes ``Decimal("0.1")``), so ten
charges of 0.1 against 1.0 leave exactly 0. Stores persist the decimal text (or Decimal128) and
compare decimals, never floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Context, Decimal, localcontext
from typing import Any

__all__ = ["Budget", "to_decimal", "DECIMAL_CONTEXT"]

#: Precision for every budget operation: well above the 17 significant digits of a double, and
#: within Decimal128's 34 so that MongoDB stores what SQLite stores.
DECIMAL_CONTEXT = Context(prec=34)


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

    def is_zero(self) -> bool:
        return self.epsilon == 0 and self.delta == 0

    def as_floats(self) -> dict[str, float]:
        """JSON form for responses: ``{"epsilon": float, "delta": float}``."""
        return {"epsilon": float(self.epsilon), "delta": float(self.delta)}

    def as_strings(self) -> dict[str, str]:
        """Exact JSON form for storage: ``{"epsilon": "0.1", "delta": "0"}``."""
        return {"epsilon": str(self.epsilon), "delta": str(self.delta)}


ZERO = Budget(Decimal(0), Decimal(0))
