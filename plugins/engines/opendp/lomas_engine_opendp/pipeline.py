"""The pipeline form: a serialized OpenDP Measurement run on the dataset's rows or one column.

What a pipeline receives depends on its input domain (its carrier type):

* ``String`` (e.g. ``make_split_lines``, ``make_split_dataframe``): the whole dataset as CSV text,
  no header, columns in metadata order, nulls as empty fields;
* ``Vec<String>`` without ``column``: one CSV line per row (same layout);
* ``Vec<T>`` with ``column``: that column's values as ``T``; rows where it is null are dropped
  (a row-wise, 1-stable step) unless ``T`` is a float whose domain admits NaN (nulls become NaN).

The input metric must be symmetric or insert-delete distance; the cost is the privacy map at
``d_in = max_ids``.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from lomas_core.data import DataHandle
from lomas_core.engine import DatasetInfo
from lomas_core.errors import InvalidQuery
from lomas_engine_opendp.errors import opendp_reason
from lomas_engine_opendp.pipeline_check import check_pipeline, parse_pipeline_json

__all__ = ["Feed", "build_pipeline", "feed_pipeline"]

log = logging.getLogger("lomas.engines.opendp")

_METRICS = ("SymmetricDistance", "InsertDeleteDistance")
#: Rust carrier type of a vector element -> (metadata types it may read, python converter)
_ATOMS: dict[str, tuple[tuple[str, ...], type]] = {
    "String": (("string", "int", "float", "boolean", "datetime"), str),
    "bool": (("boolean",), bool),
    **{t: (("int",), int) for t in ("i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32",
                                    "u64", "u128", "usize")},
    "f64": (("float", "int"), float),
    "f32": (("float", "int"), float),
}

Feed = tuple[str, str | None, bool]  # (kind: "csv" | "lines" | "column", column, nan_ok)


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


def build_pipeline(text: str, column: str | None, dataset: DatasetInfo, *,
                   honest_but_curious: bool) -> tuple[Any, Feed]:
    """Check, deserialize and validate a pipeline against the dataset's metadata.

    Returns the measurement and how to feed it. Never touches data.
    """
    import opendp.prelude as dp

    tree = parse_pipeline_json(text)
    check_pipeline(tree, honest_but_curious=honest_but_curious)
    _check_names(tree)
    try:
        measurement = dp.deserialize(text)
    except InvalidQuery:
        raise
    except Exception as exc:  # noqa: BLE001 - any library failure is a refusal of this payload
        raise InvalidQuery(f"the pipeline could not be rebuilt: {opendp_reason(exc)}") from None
    if not isinstance(measurement, dp.Measurement):
        raise InvalidQuery("the pipeline must be a Measurement (a transformation chained with a "
                           "noise mechanism), not a " + type(measurement).__name__)
    metric = measurement.input_metric.type
    if str(metric) not in _METRICS:
        raise InvalidQuery(f"the pipeline's input metric is {metric}; this server measures "
                           "datasets with SymmetricDistance (or InsertDeleteDistance)")
    return measurement, _feed_for(measurement, column, dataset)


def _feed_for(measurement: Any, column: str | None, dataset: DatasetInfo) -> Feed:
    domain = measurement.input_domain
    carrier = str(domain.carrier_type)
    meta = dataset.metadata
    if carrier == "String":
        if column is not None:
            raise InvalidQuery("'column' applies to pipelines whose input is a vector")
        return ("csv", None, False)
    if not carrier.startswith("Vec<"):
        raise InvalidQuery(f"the pipeline's input domain ({domain}) is not supported: expected "
                           "a string (CSV text) or a vector; send polars queries as a 'plan'")
    atom = carrier[4:-1]
    if column is None:
        if atom == "String":
            return ("lines", None, False)
        raise InvalidQuery(f"the pipeline reads a vector of {atom}: name the dataset column to "
                           "feed it with 'column'")
    if column not in meta.columns:
        raise InvalidQuery(f"column '{column}' is not in the dataset's metadata")
    kinds, _ = _ATOMS.get(atom, ((), str))
    if meta.columns[column].type not in kinds:
        raise InvalidQuery(f"column '{column}' ({meta.columns[column].type}) cannot be fed to a "
                           f"vector of {atom}")
    nan_ok = atom in ("f64", "f32") and bool(getattr(domain.element_domain, "nan", False))
    return ("column", column, nan_ok)


def feed_pipeline(data: DataHandle, feed: Feed, carrier: str) -> Any:
    """The input for ``feed`` as an OpenDP-owned object of type ``carrier``.

    Built and handed across OpenDP's FFI once per dataset version, then reused by every query.
    """
    from opendp._convert import py_to_c
    from opendp._lib import AnyObjectPtr

    kind, column, nan_ok = feed

    def convert(value: Any) -> Any:
        return py_to_c(value, c_type=AnyObjectPtr, type_name=carrier)

    if kind == "csv":
        return data.memo(f"opendp:csv:{carrier}", lambda: convert(_csv_text(data)))
    if kind == "lines":
        return data.memo(f"opendp:lines:{carrier}",
                         lambda: convert(_csv_text(data).splitlines()))
    assert column is not None and carrier.startswith("Vec<")
    _, to_python = _ATOMS[carrier[4:-1]]
    key = f"opendp:column:{column}:{carrier}:{nan_ok}"
    return data.memo(key, lambda: convert(_column_values(data, column, to_python, nan_ok)))


def _csv_text(data: DataHandle) -> str:
    import io

    import pyarrow.csv as pacsv

    sink = io.BytesIO()
    pacsv.write_csv(data.table, sink, pacsv.WriteOptions(include_header=False,
                                                         quoting_style="needed"))
    return sink.getvalue().decode("utf-8")


def _column_values(data: DataHandle, column: str, convert: type, nan_ok: bool) -> list[Any]:
    values = data.table.column(column).to_pylist()
    if nan_ok:
        return [float("nan") if v is None else float(v) for v in values]
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and v != v):
            continue
        out.append(convert(v.isoformat() if hasattr(v, "isoformat") else v)
                   if convert is str else convert(v))
    return out
