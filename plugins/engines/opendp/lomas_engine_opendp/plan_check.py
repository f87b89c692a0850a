"""Structural check of a polars JSON plan, done before polars parses it.

A plan is data. It may only use an allow-list of plan nodes (select, with_columns, filter,
group_by/agg, sort, slice) and expression kinds, OpenDP's own plugin expressions (``.dp.*``), and
exactly one source: the empty placeholder frame, which is replaced by the server's own. Refused:
Python functions (``map_elements``, ``map_batches``, UDFs: polars would unpickle them), file or
URL scans, joins and other sources, sub-plans, Object dtypes, unknown plugins. Literal series are
Arrow IPC bytes; they are opened with pyarrow (which never unpickles) and must hold plain types.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lomas_core.api import InvalidQuery

__all__ = ["CheckedPlan", "OPENDP_SYMBOLS", "check_plan", "parse_plan_json"]

#: The polars plugin functions OpenDP registers (``.dp.*`` and ``pl.len().dp.noise()``).
OPENDP_SYMBOLS = frozenset({"noise", "dp_len", "dp_frame_len", "dp_count", "dp_null_count",
                            "dp_n_unique", "dp_sum", "dp_mean", "dp_quantile", "dp_median"})
#: polars functions (``Function.function`` tags) a plan may use; all are pure data operations.
_FUNCTIONS = frozenset({
    "FillNull", "Boolean", "StringExpr", "TemporalExpr", "Round", "Abs", "Negate", "Clip", "Floor",
    "Ceil", "Coalesce", "Cut", "ToPhysical", "NullCount", "DropNulls", "Unique", "Pow", "Log",
    "Exp", "Sqrt", "Replace", "ReplaceStrict", "FfiPlugin", "Sign", "MaxHorizontal",
    "MinHorizontal", "SumHorizontal", "MeanHorizontal", "FillNullWithStrategy",
})
_IPC_TYPES = ("int", "uint", "float", "double", "halffloat", "string", "large_string",
              "string_view", "bool", "null", "date", "timestamp")
MAX_DEPTH = 150
MAX_NODES = 50_000


@dataclass
class CheckedPlan:
    """The plan tree with the source replaced, and the group-by key sets it uses."""

    tree: dict[str, Any]
    group_keys: list[tuple[str, ...]] = field(default_factory=list)


def parse_plan_json(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise InvalidQuery("the plan is nested too deeply") from None
    except ValueError:
        raise InvalidQuery("the plan is not valid JSON (send lf.serialize(format='json'))") from None


class _Checker:
    def __init__(self, source: dict[str, Any], plugin_lib: str, limit: int) -> None:
        self.limit = limit
        self.source = source
        self.plugin_lib = plugin_lib
        self.sources = 0
        self.nodes = 0
        self.group_keys: list[tuple[str, ...]] = []

    def _tick(self, depth: int) -> None:
        self.nodes += 1
        if depth > MAX_DEPTH or self.nodes > MAX_NODES:
            raise InvalidQuery("the plan is too large or nested too deeply")

    # -- plan nodes --------------------------------------------------------------------------------
    def plan(self, node: Any, depth: int) -> dict[str, Any]:
        self._tick(depth)
        kind, body = _variant(node, "plan node")
        handler: Callable[[dict[str, Any], int], None] | None = {
            "Select": self._select, "HStack": self._hstack, "Filter": self._filter,
            "GroupBy": self._group_by, "Sort": self._sort, "Slice": self._slice,
        }.get(kind)
        if kind == "IR":
            # polars' cached-schema wrapper around the original plan: check the plan itself.
            if not isinstance(body, dict) or "dsl" not in body or not set(body) <= {"dsl",
                                                                                   "version"}:
                raise InvalidQuery("malformed plan step 'IR'")
            return self.plan(body["dsl"], depth + 1)
        if kind == "DataFrameScan":
            self.sources += 1
            if self.sources > 1:
                raise InvalidQuery("the plan has more than one source; it must start from the "
                                   "dataset placeholder only")
            return {"DataFrameScan": self.source}
        if handler is None:
            raise InvalidQuery(f"plan step '{kind}' is not allowed (only select, with_columns, "
                               "filter, group_by/agg, sort and slice on the dataset placeholder)")
        if not isinstance(body, dict):
            raise InvalidQuery(f"malformed plan step '{kind}'")
        body = dict(body)
        handler(body, depth)
        body["input"] = self.plan(body.get("input"), depth + 1)
        return {kind: body}

    def _select(self, body: dict[str, Any], depth: int) -> None:
        _fields(body, {"expr", "input", "options"}, "select")
        self.exprs(body.get("expr"), depth)
        _plain(body.get("options"))

    def _hstack(self, body: dict[str, Any], depth: int) -> None:
        _fields(body, {"exprs", "input", "options"}, "with_columns")
        self.exprs(body.get("exprs"), depth)
        _plain(body.get("options"))

    def _filter(self, body: dict[str, Any], depth: int) -> None:
        _fields(body, {"predicate", "input"}, "filter")
        self.expr(body.get("predicate"), depth + 1)

    def _group_by(self, body: dict[str, Any], depth: int) -> None:
        _fields(body, {"input", "keys", "aggs", "maintain_order", "options", "apply"}, "group_by")
        if body.get("apply") is not None:
            raise InvalidQuery("group_by with a Python function (map_groups) is not allowed")
        options = body.get("options") or {}
        if not isinstance(options, dict) or any(options.get(k) is not None
                                                for k in ("dynamic", "rolling")):
            raise InvalidQuery("dynamic and rolling group_by are not allowed")
        _plain(options)
        keys = body.get("keys")
        self.exprs(keys, depth)
        self.exprs(body.get("aggs"), depth)
        names = tuple(k["Column"] for k in keys or [] if isinstance(k, dict)
                      and isinstance(k.get("Column"), str))
        if names:
            self.group_keys.append(names)

    def _sort(self, body: dict[str, Any], depth: int) -> None:
        _fields(body, {"input", "by_column", "slice", "sort_options"}, "sort")
        self.exprs(body.get("by_column"), depth)
        _plain(body.get("slice"))
        _plain(body.get("sort_options"))

    def _slice(self, body: dict[str, Any], depth: int) -> None:
        _fields(body, {"input", "offset", "len"}, "slice")
        for key in ("offset", "len"):
            value = body.get(key)
            if value is not None and not (isinstance(value, int) and not isinstance(value, bool)):
                raise InvalidQuery("malformed plan step 'slice'")
            if value is not None and abs(value) > self.limit:
                raise InvalidQuery(f"the plan's slice {key} ({value}) is larger than this server "
                                   f"allows for this dataset ({self.limit})")

    # -- expressions -------------------------------------------------------------------------------
    def exprs(self, value: Any, depth: int) -> None:
        if not isinstance(value, list):
            raise InvalidQuery("malformed expression list in the plan")
        for item in value:
            self.expr(item, depth + 1)

    def expr(self, node: Any, depth: int) -> None:
        self._tick(depth)
        if node in ("Len", "Wildcard"):
            return
        kind, body = _variant(node, "expression")
        if kind == "Column":
            _expect(isinstance(body, str), "column")
        elif kind == "Columns":
            _expect(isinstance(body, list) and all(isinstance(c, str) for c in body), "columns")
        elif kind == "Nth":
            _expect(isinstance(body, int), "nth")
        elif kind == "Literal":
            self.literal(body)
        elif kind == "Alias":
            _expect(isinstance(body, list) and len(body) == 2 and isinstance(body[1], str), "alias")
            self.expr(body[0], depth + 1)
        elif kind == "KeepName":
            self.expr(body, depth + 1)
        elif kind in ("BinaryExpr", "Ternary", "Filter", "Cast", "Sort"):
            _expect(isinstance(body, dict), kind)
            sub = {"BinaryExpr": ("left", "right"), "Ternary": ("predicate", "truthy", "falsy"),
                   "Filter": ("input", "by"), "Cast": ("expr",), "Sort": ("expr",)}[kind]
            for key, value in body.items():
                if key in sub:
                    self.expr(value, depth + 1)
                else:
                    _plain(value)
        elif kind == "Agg":
            _, inner = _variant(body, "aggregation")
            if isinstance(inner, dict) and ("expr" in inner or "input" in inner):
                for key, value in inner.items():
                    if key in ("expr", "input"):
                        self.expr(value, depth + 1)
                    else:
                        _plain(value)
            else:
                self.expr(inner, depth + 1)
        elif kind == "Function":
            _expect(isinstance(body, dict) and set(body) == {"input", "function"}, "function")
            self.exprs(body["input"], depth)
            self.function(body)
        else:
            raise InvalidQuery(f"expression kind '{kind}' is not allowed in a plan (Python "
                               "functions, sub-plans and windows cannot be run)")

    def function(self, body: dict[str, Any]) -> None:
        fn = body["function"]
        name, params = (fn, None) if isinstance(fn, str) else _variant(fn, "function")
        if name not in _FUNCTIONS:
            raise InvalidQuery(f"polars function '{name}' is not allowed in a plan")
        if name != "FfiPlugin":
            _plain(params)
            return
        if not isinstance(params, dict) or not set(params) <= {"flags", "lib", "symbol", "kwargs"}:
            raise InvalidQuery("malformed plugin expression in the plan")
        if params.get("symbol") not in OPENDP_SYMBOLS:
            raise InvalidQuery("the plan calls a polars plugin that is not one of OpenDP's")
        if params.get("kwargs") not in ([], None):
            raise InvalidQuery("OpenDP plugin expressions carry no keyword blob")
        _plain(params.get("flags"))
        body["function"] = {"FfiPlugin": {**params, "lib": self.plugin_lib, "kwargs": []}}

    def literal(self, body: Any) -> None:
        kind, value = _variant(body, "literal")
        if kind == "Dyn":
            _plain(value)
        elif kind == "Series":
            _check_ipc(value, self.limit)
        elif kind == "Scalar":
            inner_kind, inner = _variant(value, "scalar") if isinstance(value, dict) else ("", value)
            if inner_kind == "List" and isinstance(inner, list):
                _check_ipc(inner, self.limit)
            else:
                _plain(value)
        else:
            raise InvalidQuery(f"literal kind '{kind}' is not allowed in a plan")


def _variant(node: Any, what: str) -> tuple[str, Any]:
    if not isinstance(node, dict) or len(node) != 1:
        raise InvalidQuery(f"malformed {what} in the plan")
    ((kind, body),) = node.items()
    return str(kind), body


def _fields(body: dict[str, Any], allowed: set[str], what: str) -> None:
    if not set(body) <= allowed:
        raise InvalidQuery(f"plan step '{what}' has unexpected fields")


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise InvalidQuery(f"malformed {what} expression in the plan")


def _plain(value: Any, depth: int = 0) -> None:
    """Options and parameters: plain JSON values with no embedded objects or Object dtypes."""
    if depth > 12:
        raise InvalidQuery("plan options are nested too deeply")
    if isinstance(value, str):
        if value == "Object":
            raise InvalidQuery("Object dtypes are not allowed in a plan")
    elif isinstance(value, list):
        if len(value) > 64 and all(isinstance(v, int) for v in value):
            raise InvalidQuery("the plan carries a binary blob where none is allowed")
        for v in value:
            _plain(v, depth + 1)
    elif isinstance(value, dict):
        for k, v in value.items():
            if k in ("Object", "function", "python_udf", "Python", "PythonObject"):
                raise InvalidQuery("the plan carries a Python object where none is allowed")
            _plain(v, depth + 1)
    elif not (value is None or isinstance(value, (bool, int, float))):
        raise InvalidQuery("the plan carries an unsupported value")


def _check_ipc(raw: Any, limit: int) -> None:
    """A literal series: Arrow IPC bytes holding one plain column of at most ``limit`` values."""
    import pyarrow as pa

    if not isinstance(raw, list) or len(raw) > 1_000_000:
        raise InvalidQuery("malformed literal series in the plan")
    try:
        reader = pa.ipc.open_stream(io.BytesIO(bytes(raw)))
        schema = reader.schema
        length = reader.read_all().num_rows
    except (ValueError, OverflowError, pa.ArrowException):
        raise InvalidQuery("malformed literal series in the plan") from None
    if len(schema) != 1:
        raise InvalidQuery("malformed literal series in the plan")
    f = schema.field(0)
    if isinstance(f.type, pa.ExtensionType) or not str(f.type).startswith(_IPC_TYPES) \
            or f.metadata or set(schema.metadata or {}) - {b"_PL_FLAGS"}:
        raise InvalidQuery("literal series in a plan must hold numbers, strings or booleans")
    if length > limit:
        raise InvalidQuery(f"a literal series in the plan has {length} values, more than this "
                           f"server allows for this dataset ({limit})")


def check_plan(tree: Any, source: dict[str, Any], plugin_lib: str, *,
               limit: int = 1_000_000) -> CheckedPlan:
    """Check ``tree`` and return it with its one source replaced by ``source`` (the server's
    placeholder node) and OpenDP plugin paths pointing at the server's own library.

    Raises:
        InvalidQuery: naming the refused construct.
    """
    checker = _Checker(source, plugin_lib, limit)
    rebuilt = checker.plan(tree, 0)
    if checker.sources != 1:
        raise InvalidQuery("the plan must start from the dataset placeholder")
    return CheckedPlan(rebuilt, checker.group_keys)
