"""Exact budgets as 64-bit integer units.

MongoDB's Decimal128 is not available on every wire-compatible server (nx-27017 stores documents
as JSON), so the store keeps budget counters as integers: ``units = value * 10**digits``. Integer
``$inc`` and ``$gte`` are exact everywhere, so ten charges of 0.1 from 1.0 leave exactly 0.

Two representations live side by side in a grant document:

* the **check counters** ``rem_*`` (initial rounded **down** minus every cost rounded **up**): the
  charge filters on them, so rounding can only refuse a charge, never allow an overspend;
* the **exact spent** as three integer limbs per component (``spent_eps0..2``): the first counts
  whole units, the next two the following 12 digits each. ``$inc`` adds limbs without carrying;
  the value is ``l0*10**-d + l1*10**-(d+12) + l2*10**-(d+24)``, exact for costs with up to
  ``d + 24`` decimal places (finer digits are rounded up into the last limb).

Defaults: epsilon in units of 1e-12 (maximum about 9.2 million, exact to 1e-36), delta in units
of 1e-18 (maximum about 9.2, exact to 1e-42). The lower limbs of a sum overflow only after
millions of charges on one grant.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal, localcontext

from lomas_core.api import (
    DECIMAL_CONTEXT,
    Budget,
    InvalidRequest,
)

__all__ = ["INT64_MAX", "LIMB_DIGITS", "Scale", "Units", "limb_fields"]

INT64_MAX = 2**63 - 1
LIMB_DIGITS = 12
_COMPONENTS = (("eps", "epsilon"), ("delta", "delta"))


def limb_fields(prefix: str = "spent") -> list[str]:
    """Field names of the exact limbs: ``spent_eps0`` ... ``spent_delta2``."""
    return [f"{prefix}_{short}{i}" for short, _ in _COMPONENTS for i in range(3)]


@dataclass(frozen=True, slots=True)
class Units:
    """An (epsilon, delta) pair in integer units."""

    epsilon: int
    delta: int

    def __neg__(self) -> Units:
        return Units(-self.epsilon, -self.delta)


@dataclass(frozen=True, slots=True)
class Scale:
    """How many decimal digits one unit of epsilon and of delta carries."""

    epsilon_digits: int = 12
    delta_digits: int = 18

    def _to_units(self, value: Decimal, digits: int, rounding: str) -> int:
        with localcontext(DECIMAL_CONTEXT) as ctx:
            ctx.prec = 60  # scaling by 10**digits must not round before we choose the direction
            scaled = value.scaleb(digits)
            return int(scaled.to_integral_value(rounding=rounding))

    def cost_units(self, cost: Budget) -> Units:
        """A cost in units, rounded up (never charge less than asked)."""
        return Units(self._to_units(cost.epsilon, self.epsilon_digits, ROUND_CEILING),
                     self._to_units(cost.delta, self.delta_digits, ROUND_CEILING))

    def budget_units(self, budget: Budget) -> Units:
        """An initial budget in units, rounded down (never allow more than granted).

        Raises:
            InvalidRequest: the budget is beyond what a 64-bit counter can hold.
        """
        units = Units(self._to_units(budget.epsilon, self.epsilon_digits, ROUND_FLOOR),
                      self._to_units(budget.delta, self.delta_digits, ROUND_FLOOR))
        if units.epsilon > INT64_MAX or units.delta > INT64_MAX:
            raise InvalidRequest(
                f"budget too large for the mongodb store: epsilon at most {self.max_value('epsilon')}, "
                f"delta at most {self.max_value('delta')}")
        return units

    def fits_counter(self, units: Units) -> bool:
        """True when both components fit a signed 64-bit counter."""
        return abs(units.epsilon) <= INT64_MAX and abs(units.delta) <= INT64_MAX

    def to_budget(self, units: Units) -> Budget:
        """Units back to an exact decimal budget."""
        with localcontext(DECIMAL_CONTEXT):
            eps = Decimal(units.epsilon).scaleb(-self.epsilon_digits)
            delta = Decimal(units.delta).scaleb(-self.delta_digits)
            return Budget(_canonical(eps), _canonical(delta))

    def _digits(self, component: str) -> int:
        return self.epsilon_digits if component == "epsilon" else self.delta_digits

    def limbs(self, budget: Budget, prefix: str = "spent") -> dict[str, int]:
        """The exact limbs of ``budget`` keyed by field name (see the module docstring)."""
        out: dict[str, int] = {}
        for short, component in _COMPONENTS:
            value: Decimal = getattr(budget, component)
            digits = self._digits(component)
            with localcontext(DECIMAL_CONTEXT) as ctx:
                ctx.prec = 120
                whole = self._to_units(value, digits, ROUND_FLOOR)
                rest = value.scaleb(digits) - whole
                mid = int(rest.scaleb(LIMB_DIGITS).to_integral_value(rounding=ROUND_FLOOR))
                rest = rest.scaleb(LIMB_DIGITS) - mid
                low = int(rest.scaleb(LIMB_DIGITS).to_integral_value(rounding=ROUND_CEILING))
            out.update({f"{prefix}_{short}0": whole, f"{prefix}_{short}1": mid,
                        f"{prefix}_{short}2": low})
        return out

    def from_limbs(self, doc: dict[str, int], prefix: str = "spent") -> Budget:
        """The exact budget the limbs in ``doc`` add up to."""
        values = []
        for short, component in _COMPONENTS:
            digits = self._digits(component)
            with localcontext(DECIMAL_CONTEXT) as ctx:
                ctx.prec = 120
                total = sum((Decimal(int(doc.get(f"{prefix}_{short}{i}", 0))).scaleb(
                    -(digits + LIMB_DIGITS * i)) for i in range(3)), Decimal(0))
                values.append(_canonical(total))
        return Budget(values[0], values[1])

    def max_value(self, component: str) -> Decimal:
        digits = self.epsilon_digits if component == "epsilon" else self.delta_digits
        return Decimal(INT64_MAX).scaleb(-digits)


def _canonical(value: Decimal) -> Decimal:
    """Drop trailing zeros so that 1.000000000000 prints as 1 (value unchanged)."""
    if value == 0:
        return Decimal(0)
    normal = value.normalize(Context(prec=120))
    # normalize() turns 100 into 1E+2; quantize back to a plain integer exponent in that case.
    if normal.as_tuple().exponent > 0:  # type: ignore[operator]
        return normal.quantize(Decimal(1))
    return normal
