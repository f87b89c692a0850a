"""The pipeline form: a serialized OpenDP Measurement run on one dataset column.

The server owns the input: for the column named by ``column`` it builds the input domain and metric
itself, from the metadata, and a pipeline is accepted only if its own input domain and metric are
*equal* to them (so a pipeline cannot claim a size, bounds or a distance the data does not have):

==========  ====================================================================================
metadata    input domain (metric: ``symmetric_distance()``, ``d_in`` = ``max_ids``)
==========  ====================================================================================
int         ``vector_domain(atom_domain(T=dp.i64))`` (null rows dropped)
float       ``vector_domain(atom_domain(T=float, nan=False))``; ``nullable``: ``nan=True``, nulls
            become NaN
string      ``vector_domain(atom_domain(T=str))`` (null rows dropped)
boolean     ``vector_domain(atom_domain(T=bool))`` (null rows dropped)
datetime    ``vector_domain(atom_domain(T=str))``, ISO 8601 text (null rows dropped)
==========  ====================================================================================

Dropping null rows is a row-wise, 1-stable step (OpenDP 0.14 vectors cannot hold nulls other than
NaN). Raw-text inputs (``make_split_lines``, ``make_split_dataframe``, CSV text, one line per row)
are not offered: text split into records by line breaks or CSV quoting does not split as the table
does, so one person could count as several records.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from lomas_core.api import (
    DataHandle,
    DatasetInfo,
    InvalidQuery,
    Memo,
    Metadata,
)
from lomas_engine_opendp.errors import opendp_reason
from lomas_engine_opendp.limits import check_pipeline_sizes
from lomas_engine_opendp.pipeline_check import check_pipeline, parse_pipeline_json

__all__ = ["Feed", "build_pipeline", "canonical_domain", "feed_pipeline"]

log = logging.getLogger("lomas.engines.opendp")

#: metadata column type -> (OpenDP atom type, how a value is fed)
_ATOMS: dict[str, tuple[str, str]] = {
    "int": ("i64", "int"), "float": ("f64", "float"), "string": ("String", "str"),
    "boolean": ("bool", "bool"), "datetime": ("String", "iso"),
}

Feed = tuple[str, str, bool]  # (column, value kind, nulls as NaN)


def _check_names(tree: Any) -> None:
    """Every named constructor must be in its OpenDP module's public ``__all__``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if "__function__" in node:
                module = importlib.import_module(f"opendp.{node['__module__']}")
                if node["__function__"] not in getattr(module, "__all__", ()):
                    raise InvalidQuery(f"opendp.{node['__module__']}.{node['__function__']} is not "
                                       "a public OpenDP constructor")
            stack.extend(node.values())


def canonical_domain(meta: Metadata, column: str) -> tuple[Any, Feed]:
    """The server's input domain for ``column`` and how the column is fed to it."""
    import opendp.prelude as dp

    col = meta.columns[column]
    atom, kind = _ATOMS[col.type]
    if atom == "f64":
        element = dp.atom_domain(T=atom, nan=col.nullable)
    else:
        element = dp.atom_domain(T=atom)
    return dp.vector_domain(element), (column, kind, atom == "f64" and col.nullable)


def _describe(domain: Any) -> str:
    return str(domain)


def build_pipeline(text: str, column: str | None, dataset: DatasetInfo, *,
                   honest_but_curious: bool, limit: int) -> tuple[Any, Feed]:
    """Check, deserialize and validate a pipeline against the server's input domain and metric.

    Returns the measurement and how to feed it. Never touches data.
    """
    import opendp.prelude as dp

    tree = parse_pipeline_json(text)
    check_pipeline(tree, honest_but_curious=honest_but_curious)
    _check_names(tree)
    check_pipeline_sizes(tree, limit)
    meta = dataset.metadata
    if column is not None and column not in meta.columns:
        raise InvalidQuery(f"column '{column}' is not in the dataset's metadata")
    try:
        measurement = dp.deserialize(text)
    except InvalidQuery:
        raise
    except Exception as exc:  # noqa: BLE001 - any library failure is a refusal of this payload
        raise InvalidQuery(f"the pipeline could not be rebuilt: {opendp_reason(exc)}") from None
    if not isinstance(measurement, dp.Measurement):
        raise InvalidQuery("the pipeline must be a Measurement (a transformation chained with a "
                           "noise mechanism), not a " + type(measurement).__name__)
    carrier = str(measurement.input_domain.carrier_type)
    if carrier == "String":
        raise InvalidQuery("raw-text inputs (make_split_lines, make_split_dataframe, CSV text) "
                           "are not offered: a pipeline reads one column, given with 'column', "
                           "on the domain the server builds for it")
    if column is None:
        raise InvalidQuery("a pipeline reads one dataset column: name it with 'column' (raw-text "
                           "inputs, one line or CSV record per row, are not offered)")
    expected, feed = canonical_domain(meta, column)
    if measurement.input_domain != expected:
        raise InvalidQuery(f"the pipeline's input domain is {_describe(measurement.input_domain)}; "
                           f"for column '{column}' this server feeds {_describe(expected)} "
                           "(unsized, no bounds: clamp, resize or impute inside the pipeline)")
    metric = measurement.input_metric
    if metric != dp.symmetric_distance():
        raise InvalidQuery(f"the pipeline's input metric is {metric}; this server measures "
                           "datasets with SymmetricDistance()")
    return measurement, feed


def feed_pipeline(data: DataHandle, feed: Feed, domain: Any) -> Any:
    """The column ``feed`` as an OpenDP-owned object, checked to be a member of ``domain``.

    Built, checked and handed across OpenDP's FFI once per dataset version, then reused. Numbers
    and booleans cross as one contiguous buffer that OpenDP copies into its vector (one copy,
    counted in the handle's size); text goes through Python strings.
    """
    column, kind, nan_ok = feed
    key = f"opendp:column:{column}:{kind}:{nan_ok}"
    return data.memo(key, lambda: _member_checked(domain, _column_values(data, column, kind,
                                                                         nan_ok)))


def _member_checked(domain: Any, values: Any) -> Memo[Any]:
    from opendp._convert import py_to_c
    from opendp._lib import AnyObjectPtr
    from opendp.domains import _member

    carrier = str(domain.carrier_type)
    if isinstance(values, list):
        obj, nbytes = py_to_c(values, c_type=AnyObjectPtr, type_name=carrier), 0
    else:
        obj, nbytes = _buffer_object(values, carrier), int(values.nbytes)
    if not _member(domain, obj):
        # The feed is built to fit the domain; a failure is a server bug, never the payload's.
        raise RuntimeError("the dataset column is not a member of the server's input domain")
    return Memo(obj, nbytes=nbytes)


def _buffer_object(values: Any, carrier: str) -> Any:
    """``values`` (a contiguous numpy array of the carrier's atom) as an OpenDP ``Vec``: OpenDP
    copies the buffer, not a list of Python numbers (about 7x the column's size before)."""
    import ctypes

    from opendp._convert import _wrap_in_slice
    from opendp._lib import AnyObjectPtr, FfiResult, FfiSlicePtr, lib, unwrap

    expected = {"Vec<f64>": "float64", "Vec<i64>": "int64", "Vec<bool>": "bool"}[carrier]
    if str(values.dtype) != expected or not values.flags.c_contiguous:
        raise RuntimeError("the column buffer does not match the pipeline's input domain")
    raw = _wrap_in_slice(values.ctypes.data, len(values))
    function = lib.opendp_data__slice_as_object
    function.argtypes = [FfiSlicePtr, ctypes.c_char_p]
    function.restype = FfiResult
    return unwrap(function(raw, carrier.encode()), AnyObjectPtr)


def _column_values(data: DataHandle, column: str, kind: str, nan_ok: bool) -> Any:
    import numpy as np
    import pyarrow.compute as pc

    values = data.table.column(column)
    if kind == "float":
        # Nulls arrive as NaN (nullable column) or are dropped with NaN (the domain has no NaN).
        floats = np.ascontiguousarray(values.cast("float64").to_numpy(zero_copy_only=False),
                                      dtype=np.float64)
        return floats if nan_ok else np.ascontiguousarray(floats[~np.isnan(floats)])
    if kind == "int":
        ints = pc.drop_null(values).cast("int64").to_numpy(zero_copy_only=False)
        return np.ascontiguousarray(ints, dtype=np.int64)
    if kind == "bool":
        flags = pc.drop_null(values).cast("bool").to_numpy(zero_copy_only=False)
        return np.ascontiguousarray(flags, dtype=np.bool_)
    present = (v for v in values.to_pylist() if v is not None)
    if kind == "iso":
        return [v.isoformat() if hasattr(v, "isoformat") else str(v) for v in present]
    return [str(v) for v in present]
