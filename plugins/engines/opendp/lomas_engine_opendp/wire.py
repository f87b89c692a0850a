"""The wire format of ``opendp`` queries, client side (no server imports; mirror it freely).

Two query forms travel as JSON text inside the request:

* a measurement: ``{"pipeline": dp.serialize(measurement)}``, OpenDP's own JSON;
* a polars plan: ``{"plan": lf.serialize(format="json"), "plan_format": "polars-json"}``, polars'
  JSON form of the LazyFrame built on :func:`placeholder` (an empty frame with the dataset's
  schema). JSON, not polars' binary form, because the server must inspect the plan structurally
  before anything parses it (the binary form can only be read by polars itself, which would
  unpickle any Python function in it).

``polars`` and ``opendp`` are imported only inside the functions that need them.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "PIPELINE_ATOMS",
    "PLAN_FORMAT",
    "input_domain",
    "make_payload",
    "placeholder",
    "polars_schema",
    "serialize_pipeline",
    "serialize_plan",
]

#: Tag of the plan encoding, sent as ``plan_format``.
PLAN_FORMAT = "polars-json"

#: metadata column type -> polars dtype name (datetime columns are not offered to plans).
POLARS_TYPES: dict[str, str] = {"int": "Int64", "float": "Float64", "string": "String",
                                "boolean": "Boolean"}


def polars_schema(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The polars schema plans are written against: metadata columns with a polars dtype."""
    import polars as pl

    columns = metadata.get("columns") or {}
    return {name: getattr(pl, POLARS_TYPES[str(col.get("type"))])
            for name, col in columns.items() if str(col.get("type")) in POLARS_TYPES}


def placeholder(metadata: Mapping[str, Any]) -> pl.LazyFrame:
    """An empty LazyFrame with the dataset's schema: the one source a plan may start from."""
    import polars as pl

    return pl.LazyFrame(schema=polars_schema(metadata))


def serialize_plan(plan: Any) -> str:
    """JSON text of a polars LazyFrame (or an OpenDP ``LazyFrameQuery``'s polars plan)."""
    plan = getattr(plan, "polars_plan", plan)
    with warnings.catch_warnings():
        # polars marks its JSON form deprecated; it is the only form that can be inspected safely.
        warnings.simplefilter("ignore")
        text = str(plan.serialize(format="json"))
    if '"IR"' in text:
        text = json.dumps(_strip_ir(json.loads(text)), separators=(",", ":"))
    return text


def _strip_ir(node: Any) -> Any:
    """Replace polars' cached-schema wrappers ``{"IR": {"dsl": plan, ...}}`` by ``plan`` (polars
    adds them once a LazyFrame's schema was resolved, e.g. by ``collect_schema()``)."""
    if isinstance(node, dict):
        inner = node.get("IR")
        if len(node) == 1 and isinstance(inner, dict) and "dsl" in inner:
            return _strip_ir(inner["dsl"])
        return {key: _strip_ir(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_strip_ir(item) for item in node]
    return node


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
    import opendp.prelude as dp

    return str(dp.serialize(measurement))


def make_payload(query: Any, *, fixed_delta: float | None = None, **options: Any) -> dict[str, Any]:
    """The ``opendp`` engine payload for a Measurement, a LazyFrame or LazyFrameQuery.

    ``options`` are the other payload fields (``epsilon``, ``rho``, ``delta``, ``output_measure``,
    ``global_scale``, ``threshold``, ``column``); ``None`` values are left out.
    """
    kind = type(query).__name__
    if kind == "Measurement":
        payload: dict[str, Any] = {"pipeline": serialize_pipeline(query)}
    elif kind in ("LazyFrame", "LazyFrameQuery"):
        payload = {"plan": serialize_plan(query), "plan_format": PLAN_FORMAT}
    else:
        raise TypeError(f"expected an OpenDP Measurement or a polars LazyFrame, not {kind}")
    if fixed_delta is not None:
        payload["fixed_delta"] = fixed_delta
    payload.update({k: v for k, v in options.items() if v is not None})
    return payload
