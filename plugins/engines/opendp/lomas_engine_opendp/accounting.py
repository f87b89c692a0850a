"""Privacy accounting: a measurement's map at ``d_in = max_ids`` as an exact (epsilon, delta).

``d_in`` is the server's (``max_ids`` under the symmetric distance of the server-built input
domain), never the payload's. A map of (0, 0) is refused: every accepted measurement reads the
dataset, so a zero loss means the map does not describe the data it would run on.

* MaxDivergence -> (epsilon, 0)
* Approximate<MaxDivergence> -> (epsilon, delta)
* ZeroConcentratedDivergence, Approximate<ZeroConcentratedDivergence> and SmoothedMaxDivergence ->
  converted with OpenDP's own combinators at the client's ``fixed_delta`` (refused without it).

The charge is exactly what OpenDP's (conservatively rounded) maps say, never less.
"""

from __future__ import annotations

from typing import Any

from lomas_core.api import (
    Budget,
    InvalidQuery,
)
from lomas_engine_opendp.errors import opendp_reason

__all__ = ["charge_of"]

_NEEDS_DELTA = ("ZeroConcentratedDivergence", "Approximate<ZeroConcentratedDivergence>",
                "SmoothedMaxDivergence")


def charge_of(measurement: Any, d_in: int, fixed_delta: float | None) -> Budget:
    """The (epsilon, delta) cost of ``measurement`` when one individual changes ``d_in`` rows."""
    charge = _charge(measurement, d_in, fixed_delta)
    if charge.epsilon <= 0 and charge.delta <= 0:
        raise InvalidQuery(f"the measurement's privacy map is 0 at d_in={d_in}: a measurement that "
                           "reads the dataset cannot be free; build it on the server's input "
                           "domain and add noise")
    return charge


def _charge(measurement: Any, d_in: int, fixed_delta: float | None) -> Budget:
    import opendp.prelude as dp

    measure = str(measurement.output_measure.type)
    try:
        if measure == "MaxDivergence":
            return Budget.of(_finite(measurement.map(d_in)), 0)
        if measure == "Approximate<MaxDivergence>":
            eps, delta = measurement.map(d_in)
            return Budget.of(_finite(eps), _finite(delta))
        if measure in _NEEDS_DELTA:
            if fixed_delta is None or fixed_delta <= 0:
                raise InvalidQuery(f"the output measure is {measure}: give 'fixed_delta' (> 0) to "
                                   "convert it to (epsilon, delta)")
            if measure == "SmoothedMaxDivergence":
                converted = dp.c.make_fix_delta(measurement, fixed_delta)
            else:
                converted = dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(measurement),
                                                fixed_delta)
            eps, delta = converted.map(d_in)
            return Budget.of(_finite(eps), _finite(delta))
    except InvalidQuery:
        raise
    except Exception as exc:  # noqa: BLE001 - library refusal on public inputs
        raise InvalidQuery(f"the privacy cost could not be computed: {opendp_reason(exc)}") from None
    raise InvalidQuery(f"output measure {measure} is not supported; use MaxDivergence, "
                       "Approximate<MaxDivergence>, ZeroConcentratedDivergence or "
                       "SmoothedMaxDivergence")


def _finite(x: Any) -> float:
    value = float(x)
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidQuery("the privacy cost is unbounded (infinite); add noise or bounds")
    return value
