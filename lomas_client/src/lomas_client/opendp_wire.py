"""The wire format of ``opendp`` queries, shared by the client and the engine.

This file is ``lomas_client/opendp_wire.py`` (the source) and, byte for byte,
``lomas_engine_opendp/wire.py`` (a copy, so that the client never depends on the server);
``tests/core/test_wire_copy.py`` fails when they differ. Edit the client's file, then copy it.

* a measurement travels as ``{"pipeline": dp.serialize(measurement)}`` (OpenDP's own JSON);
* a polars plan (a ``pl.LazyFrame`` built on :func:`empty_lazyframe`, or an OpenDP
  ``LazyFrameQuery``) travels as ``{"plan": lf.serialize(format="json"), "plan_format":
  "polars-json"}``: polars' JSON form, which the server inspects structurally before parsing it;
* ``fixed_delta`` and the engine options (``epsilon``, ``rho``, ``delta``, ``output_measure``,
  ``global_scale``, ``threshold``, ``column``) ride along as fields; ``None`` values are left out.

``opendp`` and ``polars`` are optional (``lomas-client[opendp]``) and imported only when used.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

__all__ = ["PIPELINE_ATOMS", "PLAN_FORMAT", "POLARS_TYPES", "empty_lazyframe", "input_domain",
           "make_payload", "polars_schema", "serialize_pipeline", "serialize_plan"]

#: Tag of the plan encoding, sent as ``plan_format``.
PLAN_FORMAT = "polars-json"

#: metadata column type -> polars dtype name (datetime columns are not offered to plans).
POLARS_TYPES: dict[str, str] = {"int": "Int64", "float": "Float64", "string": "String",
                                "boolean": "Boolean"}

_MISSING_EXTRA = "this needs the OpenDP extra of the client: pip install 'lomas-client[opendp]'"


def _import_polars() -> Any:
    try:
        import polars as pl
    except ImportError:
        raise ImportError(_MISSING_EXTRA) from None
    return pl


def polars_schema(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The polars schema plans are written against: metadata columns with a polars dtype."""
    pl = _import_polars()
    columns = metadata.get("columns") or {}
    return {name: getattr(pl, POLARS_TYPES[str(col.get("type"))])
            for name, col in columns.items()
            if isinstance(col, Mapping) and str(col.get("type")) in POLARS_TYPES}


def empty_lazyframe(metadata: Mapping[str, Any]) -> pl.LazyFrame:
    """An empty LazyFrame with the dataset's schema: the one source a plan may start from."""
    pl = _import_polars()
    return pl.LazyFrame(schema=polars_schema(metadata))


def _strip_ir(node: Any) -> Any:
    """Replace polars' cached-IR wrappers ``{"IR": {"dsl": plan, "version": n}}`` by ``plan``."""
    if isinstance(node, dict):
        inner = node.get("IR")
        if len(node) == 1 and isinstance(inner, dict) and "dsl" in inner:
            return _strip_ir(inner["dsl"])
        return {key: _strip_ir(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_strip_ir(item) for item in node]
    return node


def serialize_plan(plan: Any) -> str:
    """JSON text of a polars LazyFrame (or an OpenDP ``LazyFrameQuery``'s polars plan).

    Once a LazyFrame's schema has been resolved (``collect_schema()``, ``.columns``, ...), polars
    serializes its source as a cached-IR wrapper around the original plan; the wrapper is
    replaced by that plan so the server sees only plain plan steps.
    """
    plan = getattr(plan, "polars_plan", plan)
    with warnings.catch_warnings():
        # polars marks its JSON form deprecated; it is the form the server can inspect safely.
        warnings.simplefilter("ignore")
        text = str(plan.serialize(format="json"))
    if '"IR"' in text:
        text = json.dumps(_strip_ir(json.loads(text)), separators=(",", ":"))
    return text


#: metadata column type -> how a pipeline's input vector holds it: (OpenDP atom type, NaN allowed
#: when the column is nullable). Datetime columns are fed as ISO 8601 text.
PIPELINE_ATOMS: dict[str, str] = {"int": "i64", "float": "f64", "string": "String",
                                  "boolean": "bool", "datetime": "String"}


def input_domain(metadata: Mapping[str, Any], column: str) -> Any:
    """The input domain the server feeds a pipeline reading ``column`` (build pipelines on it).

    ``vector_domain(atom_domain(T))``, unsized and without bounds: ``i64`` for int columns,
    ``f64`` for floats (``nan=True`` when the column is nullable: nulls arrive as NaN, otherwise
    ``nan=False``), ``String`` for strings and datetimes, ``bool`` for booleans. Null rows of other
    columns are dropped. The input metric is ``dp.symmetric_distance()``.
    """
    import opendp.prelude as dp

    col = (metadata.get("columns") or {}).get(column)
    if not isinstance(col, Mapping) or str(col.get("type")) not in PIPELINE_ATOMS:
        raise KeyError(f"column '{column}' is not a dataset column a pipeline can read")
    atom = PIPELINE_ATOMS[str(col["type"])]
    if atom == "f64":
        return dp.vector_domain(dp.atom_domain(T=dp.f64, nan=bool(col.get("nullable", False))))
    return dp.vector_domain(dp.atom_domain(T=atom))


def serialize_pipeline(measurement: Any) -> str:
    """OpenDP's JSON text of a ``dp.Measurement``."""
    try:
        import opendp.prelude as dp
    except ImportError:
        raise ImportError(_MISSING_EXTRA) from None
    return str(dp.serialize(measurement))


def make_payload(query: Any, *, fixed_delta: float | None = None, **options: Any) -> dict[str, Any]:
    """The ``opendp`` engine payload for a Measurement, a LazyFrame or a LazyFrameQuery.

    A mapping that already holds ``pipeline`` or ``plan`` is taken as a ready payload.
    """
    kind = type(query).__name__
    if isinstance(query, Mapping) and ("pipeline" in query or "plan" in query):
        payload: dict[str, Any] = dict(query)
    elif kind == "Measurement":
        payload = {"pipeline": serialize_pipeline(query)}
    elif kind in ("LazyFrame", "LazyFrameQuery"):
        payload = {"plan": serialize_plan(query), "plan_format": PLAN_FORMAT}
    else:
        raise TypeError(f"expected an OpenDP Measurement or a polars LazyFrame, not {kind}")
    if fixed_delta is not None:
        payload["fixed_delta"] = fixed_delta
    payload.update({k: v for k, v in options.items() if v is not None})
    return payload
