"""Privacy settings and costs, exactly as SmartNoise-SQL computes them.

:func:`spent_by` is the body of ``PrivateReader.get_privacy_cost`` for one query, plus the checks
the library only makes when it executes a query (a SUM/AVG over a column without bounds, the
threshold that hides rare groups): those refusals must come before the charge, not after it.
Pinned to smartnoise-sql 1.0.x; the tests compare the figure with ``get_privacy_cost``.
"""

from __future__ import annotations

import math
from typing import Any

from lomas_core.api import InvalidQuery
from lomas_engine_smartnoise_sql.calibration import ScaleCache
from lomas_engine_smartnoise_sql.query import SmartnoiseSQLQuery
from lomas_engine_smartnoise_sql.sql_check import researcher_message

__all__ = ["analyse", "privacy_of", "spent_by"]


def privacy_of(query: SmartnoiseSQLQuery, scales: ScaleCache | None = None) -> Any:
    """A new ``snsql.Privacy`` for this query (mechanism overrides applied); with ``scales``, its
    mechanisms take their calibrated noise scale from that cache (see :mod:`.calibration`)."""
    from snsql import Privacy
    from snsql.sql._mechanisms.base import Mechanism
    from snsql.sql.privacy import Mechanisms, Stat

    mechanisms = Mechanisms()
    for stat, mech in (query.mechanisms or {}).items():
        mechanisms.map[Stat[stat]] = Mechanism[mech]
    if scales is not None:
        scales.install(mechanisms)
    return Privacy(epsilon=query.epsilon, delta=query.delta, mechanisms=mechanisms)


def _column_of(symbol: Any) -> str:
    from snsql._ast.ast import TableColumn

    column = symbol.expression.find_node(TableColumn)
    return str(column.colname) if column is not None else str(symbol.name)


def _check_runnable(reader: Any, subquery: Any, mechs: list[Any]) -> None:
    for symbol, mech in zip(subquery._select_symbols, mechs, strict=True):
        if mech is not None and mech.sensitivity is not None and math.isinf(mech.sensitivity):
            raise InvalidQuery(f"column {_column_of(symbol)!r} needs lower and upper bounds in the "
                               "metadata for this statistic (SUM, AVG, VAR, STDDEV)")
    if reader._options.censor_dims:
        position = reader._get_keycount_position(subquery)
        if position is None:
            raise InvalidQuery("this dataset hides rare groups (censor_dims), which needs a "
                               "count in the query")
        if mechs[position] is not None:
            _ = mechs[position].threshold  # raises when delta cannot pay for the threshold


def analyse(reader: Any, sql: str) -> tuple[float, float, Any]:
    """(epsilon, delta) that running ``sql`` through ``reader`` spends, and the rewritten
    aggregate query (SmartNoise-SQL's tree of what the database would run); nothing is run.

    Raises:
        InvalidQuery: SmartNoise-SQL refuses the query, or would refuse to run it.
    """
    from snsql import Privacy
    from snsql.sql.odometer import OdometerHeterogeneous

    try:
        subquery, _ = reader._rewrite(sql)
        mechs = reader._get_mechanisms(subquery)
        _check_runnable(reader, subquery, mechs)
    except InvalidQuery:
        raise
    except RecursionError:
        raise InvalidQuery("the SQL is nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - the library refuses with ValueError; see message
        raise InvalidQuery(researcher_message(exc)) from None
    odometer = OdometerHeterogeneous(reader.privacy)
    for mech in mechs:
        if mech is not None:
            odometer.spend(Privacy(epsilon=mech.epsilon, delta=mech.delta))
    epsilon, delta = odometer.spent
    return float(epsilon), float(delta), subquery


def spent_by(reader: Any, sql: str) -> tuple[float, float]:
    """(epsilon, delta) that running ``sql`` through ``reader`` spends (see :func:`analyse`)."""
    epsilon, delta, _ = analyse(reader, sql)
    return epsilon, delta
