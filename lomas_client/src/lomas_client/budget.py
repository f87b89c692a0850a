"""Exact privacy budgets: :class:`Budget` and its numbers, :class:`BudgetNumber`.

The server keeps every budget as an exact decimal (costs are rounded *up* to multiples of 1e-9 for
epsilon and 1e-15 for delta before they are charged). The client reads the numbers from the JSON
text as decimals, so what you see is what the server holds and what ``lomas admin budget show``
prints: ``0.850000004``, never ``0.8500000039999999``.

They still behave like the numbers researchers used to get (floats):

* ``client.get_remaining_budget()["epsilon"]`` works (a :class:`Budget` is a ``dict``), and so does
  ``.epsilon``;
* comparisons with plain numbers mean what they read as: ``BudgetNumber("0.1") == 0.1`` is true (a
  float is taken as the decimal its ``repr`` shows, the same rule the server applies to floats);
* arithmetic with floats and ints stays exact and returns a :class:`BudgetNumber`:
  ``remaining["epsilon"] - 0.1`` is an exact decimal; ``float(x)`` gives a float back.

Budget numbers can be passed back to the client as they are (``epsilon=remaining["epsilon"] / 2``):
request bodies are encoded with every decimal as a float. ``json.dumps`` of your own does not know
decimals: pass ``default=float`` (or ``str`` for the exact text).
"""

from __future__ import annotations

import math
from decimal import Context, Decimal, localcontext
from typing import Any

__all__ = ["Budget", "BudgetNumber", "jsonable", "to_budget_number"]

#: The server's precision for budget arithmetic.
_CONTEXT = Context(prec=34)


def _exact(value: Any) -> Decimal | None:
    """``value`` as an exact Decimal (floats through their shortest repr); None when not a number
    this type works with (NaN and infinities included: those compare as floats)."""
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(float(value))) if math.isfinite(value) else None
    return None


class BudgetNumber(Decimal):
    """An exact budget amount: a :class:`decimal.Decimal` that also works with floats.

    Printed as a plain decimal numeral (``0.000015``, never ``1.5E-5``). Compared with or combined
    with a float, the float counts as the decimal its ``repr`` shows (``0.1`` is ``0.1``).
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return self.__str__()

    def __str__(self) -> str:
        return format(self, "f")

    def __hash__(self) -> int:
        return Decimal.__hash__(self)

    # -- comparisons -------------------------------------------------------------------------------
    def _cmp(self, other: Any, op: str) -> Any:
        exact = _exact(other)
        if exact is None:
            if isinstance(other, float):  # NaN or an infinity
                return getattr(float(self), op)(other)
            return NotImplemented
        return getattr(Decimal, op)(Decimal(self), exact)

    def __eq__(self, other: object) -> bool:
        return self._cmp(other, "__eq__")  # type: ignore[no-any-return]

    def __ne__(self, other: object) -> bool:
        result = self._cmp(other, "__eq__")
        return result if result is NotImplemented else not result

    def __lt__(self, other: Any) -> bool:
        return self._cmp(other, "__lt__")  # type: ignore[no-any-return]

    def __le__(self, other: Any) -> bool:
        return self._cmp(other, "__le__")  # type: ignore[no-any-return]

    def __gt__(self, other: Any) -> bool:
        return self._cmp(other, "__gt__")  # type: ignore[no-any-return]

    def __ge__(self, other: Any) -> bool:
        return self._cmp(other, "__ge__")  # type: ignore[no-any-return]

    # -- arithmetic --------------------------------------------------------------------------------
    def _op(self, other: Any, op: str) -> Any:
        exact = _exact(other)
        if exact is None:
            if isinstance(other, float):
                return getattr(float(self), op)(other)
            return NotImplemented
        with localcontext(_CONTEXT):
            return BudgetNumber(getattr(Decimal, op)(Decimal(self), exact))

    def __add__(self, other: Any) -> Any:
        return self._op(other, "__add__")

    def __radd__(self, other: Any) -> Any:
        return self._op(other, "__radd__")

    def __sub__(self, other: Any) -> Any:
        return self._op(other, "__sub__")

    def __rsub__(self, other: Any) -> Any:
        return self._op(other, "__rsub__")

    def __mul__(self, other: Any) -> Any:
        return self._op(other, "__mul__")

    def __rmul__(self, other: Any) -> Any:
        return self._op(other, "__rmul__")

    def __truediv__(self, other: Any) -> Any:
        return self._op(other, "__truediv__")

    def __rtruediv__(self, other: Any) -> Any:
        return self._op(other, "__rtruediv__")

    def __round__(self, ndigits: Any = None) -> Any:
        if ndigits is None:
            return Decimal.__round__(self)
        return BudgetNumber(Decimal.__round__(self, ndigits))

    def __neg__(self, context: Any = None) -> BudgetNumber:
        return BudgetNumber(Decimal.__neg__(self))

    def __abs__(self, context: Any = None) -> BudgetNumber:
        return BudgetNumber(Decimal.__abs__(self))


def jsonable(value: Any) -> Any:
    """``value`` with every :class:`~decimal.Decimal` (a budget number passed in a payload) as a
    float, inside dicts, lists and tuples; anything else unchanged (for request bodies)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def to_budget_number(value: Any) -> BudgetNumber:
    """A :class:`BudgetNumber` from the server's JSON (a decimal parsed from the text, an int, a
    float from an older parse, or a numeric string); 0 for null."""
    if value is None:
        return BudgetNumber(0)
    if isinstance(value, str):
        return BudgetNumber(value)
    exact = _exact(value)
    if exact is None:
        raise ValueError(f"not a budget amount: {value!r}")
    return BudgetNumber(exact)


class Budget(dict[str, BudgetNumber]):
    """An exact ``{"epsilon", "delta"}`` budget (a ``dict``, so ``b["epsilon"]`` keeps working).

    ``b.epsilon`` and ``b.delta`` are :class:`BudgetNumber` values; ``b == {"epsilon": 0.5,
    "delta": 0.0}`` compares the amounts; ``b1 - b2`` and ``b1 + b2`` are exact;
    ``b.fits(other)`` says whether ``b`` is within ``other`` on both parts.
    """

    def __init__(self, epsilon: Any = 0, delta: Any = 0) -> None:
        super().__init__(epsilon=to_budget_number(epsilon), delta=to_budget_number(delta))

    @classmethod
    def from_json(cls, raw: Any) -> Budget | None:
        """From the server's ``{"epsilon", "delta"}`` object; None when ``raw`` is not one."""
        if not isinstance(raw, dict):
            return None
        return cls(raw.get("epsilon"), raw.get("delta"))

    @property
    def epsilon(self) -> BudgetNumber:
        return self["epsilon"]

    @property
    def delta(self) -> BudgetNumber:
        return self["delta"]

    def __repr__(self) -> str:
        return f"Budget(epsilon={self.epsilon}, delta={self.delta})"

    def __add__(self, other: Any) -> Budget:
        other = _as_budget(other)
        return Budget(self.epsilon + other.epsilon, self.delta + other.delta)

    def __sub__(self, other: Any) -> Budget:
        other = _as_budget(other)
        return Budget(self.epsilon - other.epsilon, self.delta - other.delta)

    def fits(self, within: Any) -> bool:
        """True when both parts of this budget are at most those of ``within``."""
        other = _as_budget(within)
        return bool(self.epsilon <= other.epsilon and self.delta <= other.delta)

    def as_floats(self) -> dict[str, float]:
        """``{"epsilon": float, "delta": float}`` (e.g. for ``json.dumps``)."""
        return {"epsilon": float(self.epsilon), "delta": float(self.delta)}


def _as_budget(value: Any) -> Budget:
    if isinstance(value, Budget):
        return value
    if isinstance(value, dict):
        return Budget(value.get("epsilon", 0), value.get("delta", 0))
    raise TypeError(f"expected a budget ({{'epsilon', 'delta'}}), not {type(value).__name__}")
