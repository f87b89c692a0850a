"""The dataset as OpenDP sees it: a LazyFrame that scans the handle's Arrow table, no copy.

Handing OpenDP a polars ``DataFrame`` made the data cross its FFI as a serialised plan: polars
wrote the frame into the plan bytes, OpenDP's library read it back, and a 281 MB table peaked at
several GB and left about 2 GB held per worker. Here OpenDP receives a *scan*: a polars IO source
(``register_io_source``) whose serialised form carries only a key. On each query, OpenDP's polars
calls back into this module, which streams batches of the handle's Arrow table (memory-mapped
from the dataset cache's IPC file in a worker) through the domain rules below, so the dataset is
in the worker once, as the shared mapped file, and a query holds only the columns it reads.

Numbers convert from Arrow to polars without a copy; strings do not (polars keeps them as views),
and converting a 1M-row string column took about 5 ms of CPU per query. A string column is
therefore converted once per dataset version, when a query first reads it, and kept as a handle
memo (:func:`_column`, counted in the handle's size, released with it): that polars form, not
the mapped Arrow column, is what queries slice; batches are zero-copy slices of it.

Domain rules (1-stable row-wise steps that keep the data inside the declared domain): columns get
the domain's dtypes; NaN and values outside a column's declared categories become null; rows with
a null in a non-nullable column are dropped. They are applied per batch, before polars' pushed-down
projection, predicate and row limit, so the source behaves exactly like the prepared frame. Which
rules have any work is surveyed once per version (:func:`_survey`): a query then reads only the
columns it uses plus those whose nulls decide dropped rows, and numbers convert without a copy.

The key only names an entry of this process's registry; it is server-made (a researcher's plan can
hold no scan: the plan check allows the dataset placeholder as its only source).
"""

from __future__ import annotations

import functools
import itertools
import threading
import weakref
from collections.abc import Iterator
from typing import Any

from lomas_core.api import DataHandle, Memo, Metadata, metadata_hash
from lomas_engine_opendp.wire import polars_schema

__all__ = ["BATCH_ROWS", "prepared_frame", "registered"]

#: Rows per batch handed to polars (a hint from polars overrides it).
BATCH_ROWS = 1 << 20

_registry: dict[str, tuple[weakref.ref[DataHandle], Metadata, _Rules]] = {}
_lock = threading.Lock()
_ids = itertools.count()


def registered() -> int:
    """How many dataset scans this process holds (for tests)."""
    with _lock:
        return len(_registry)


def prepared_frame(data: DataHandle, meta: Metadata) -> Any:
    """The dataset as an OpenDP-owned LazyFrame object scanning ``data.table``, built once per
    dataset version and metadata (``DataHandle.memo``); released with the handle."""
    key = "opendp:lazyframe:" + metadata_hash(meta)
    return data.memo(key, lambda: _register(data, meta))


def _register(data: DataHandle, meta: Metadata) -> Memo[Any]:
    from opendp._convert import py_to_c
    from opendp._lib import AnyObjectPtr
    from polars.io.plugins import register_io_source

    table = data.table
    if meta.rows is not None and table.num_rows > meta.rows and not data.dummy:
        # The domain's margins promise at most `rows` rows; the data must be a member of it.
        # (The core refuses such a table when it loads it; a dummy may be asked for more rows.)
        raise RuntimeError("the dataset has more rows than its public metadata declares")
    rules = _survey(table, meta)
    with _lock:
        key = f"{data.dataset}:{next(_ids)}"
        # A weak reference: the registry must not keep the handle (and its memos) alive.
        _registry[key] = (weakref.ref(data), meta, rules)
    try:
        lazy = register_io_source(functools.partial(_batches, key), schema=rules.schema)
        obj = py_to_c(lazy, c_type=AnyObjectPtr, type_name="LazyFrame")
    except BaseException:
        _release(key)
        raise
    # OpenDP keeps the Python LazyFrame for its own serializer (never used here).
    obj.__opendp_dict__ = {}
    # The data is the handle's table (already counted in its size): the memo holds no copy
    # (converted string columns are memos of their own, see _column).
    return Memo(obj, nbytes=0, close=functools.partial(_release, key))


def _release(key: str) -> None:
    with _lock:
        _registry.pop(key, None)


class _Rules:
    """The domain rules that have work on one table (from :func:`_survey`)."""

    def __init__(self, fix: frozenset[str], drop: tuple[str, ...], schema: dict[str, Any]) -> None:
        #: Columns whose values may change (a cast, NaN or a foreign category to null).
        self.fix = fix
        #: Non-nullable columns that hold a null once fixed: their rows are dropped.
        self.drop = drop
        #: The domain's polars schema (computed once, not per query).
        self.schema = schema


def _survey(table: Any, meta: Metadata) -> _Rules:
    """Which rules change anything on ``table``: one pass over its columns (public work-saving
    only; skipping a rule that has no work leaves every answer as it was)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    # The Arrow types that already are the domain's dtypes (what the core's loading gives).
    arrow = {"int": pa.int64(), "float": pa.float64(), "string": pa.string(),
             "boolean": pa.bool_()}
    fix, drop = set(), []
    schema = polars_schema(meta.model_dump())
    for name in schema:
        col = meta.columns[name]
        column = table.column(name)
        changes = column.type != arrow[col.type]  # the cast itself may make nulls
        if not changes and col.type == "float" and len(column):
            changes = bool(pc.any(pc.is_nan(column)).as_py())
        if not changes and col.categories and len(column):
            try:
                allowed = pa.array(col.categories).cast(arrow[col.type])
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                changes = True  # let the rule decide, value by value
            else:
                inside = pc.fill_null(pc.is_in(column, value_set=allowed), True)
                changes = not bool(pc.all(inside).as_py())
        if changes:
            fix.add(name)
        if not col.nullable and (column.null_count > 0
                                 or (changes and _nulls_once_fixed(column, name, schema[name],
                                                                   meta))):
            drop.append(name)
    return _Rules(frozenset(fix), tuple(drop), schema)


def _nulls_once_fixed(column: Any, name: str, dtype: Any, meta: Metadata) -> bool:
    """Whether the column's domain rule turns any value into a null (a row-dropping pass each
    query otherwise costs ~1.5 ms per million rows for a column whose rule only casts)."""
    import polars as pl

    series = pl.from_arrow(column)
    assert isinstance(series, pl.Series)
    fixed = series.to_frame(name).select(_rule(name, dtype, meta)).to_series()
    return bool(fixed.null_count() > 0)


def _batches(key: str, with_columns: list[str] | None, predicate: Any, n_rows: int | None,
             batch_size: int | None) -> Iterator[Any]:
    """The IO source: prepared batches of the registered table (called by polars per query)."""
    import polars as pl

    with _lock:
        ref, meta, rules = _registry[key]
    data = ref()
    if data is None:  # the handle is gone: no query can be running on it
        raise RuntimeError("the dataset version was released")
    schema = rules.schema
    wanted = list(schema) if with_columns is None else list(with_columns)
    roots = predicate.meta.root_names() if predicate is not None else []
    # Columns read: the projection, what the predicate uses and what decides dropped rows.
    read = list(dict.fromkeys([*wanted, *roots, *rules.drop]))
    kept = {name: _column(data, name, schema[name], meta, name in rules.fix)
            for name in read if _copies(data.table.schema.field(name).type)}
    source = data.table.select([name for name in read if name not in kept])
    fixes = [_rule(name, schema[name], meta) for name in source.column_names
             if name in rules.fix]
    step = batch_size or BATCH_ROWS
    left = n_rows
    for start in range(0, max(data.table.num_rows, 1), step):
        if left is not None and left <= 0:
            return
        part = pl.from_arrow(source.slice(start, step), rechunk=False)
        assert isinstance(part, pl.DataFrame)
        columns = {series.name: series for series in part.get_columns()}
        columns.update((name, series.slice(start, step)) for name, series in kept.items())
        # Built from its columns, not with DataFrame.select/with_columns: those run polars'
        # query engine, nested inside the engine run that called this source, and in a server
        # they waited on its thread pool for milliseconds per query.
        frame = pl.DataFrame([columns[name] for name in read])
        if fixes:
            frame = frame.with_columns(fixes)
        if rules.drop:
            frame = frame.drop_nulls(subset=list(rules.drop))
        if predicate is not None:
            frame = frame.filter(predicate)
        frame = pl.DataFrame([frame.get_column(name) for name in wanted])
        if left is not None:
            frame = frame.head(left)
            left -= frame.height
        yield frame


def _copies(arrow_type: Any) -> bool:
    """Whether polars copies a column of this Arrow type when it imports it (strings)."""
    import pyarrow as pa

    return bool(pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
                or pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type)
                or pa.types.is_dictionary(arrow_type))


def _column(data: DataHandle, name: str, dtype: Any, meta: Metadata, fix: bool) -> Any:
    """Column ``name`` as a polars Series, converted once per handle (a memo of its own); with
    ``fix``, after its domain rule (which depends on the metadata: the key names it)."""
    key = f"opendp:column:{name}" + (":" + metadata_hash(meta) if fix else "")
    return data.memo(key, lambda: _convert(data, name, dtype, meta, fix))


def _convert(data: DataHandle, name: str, dtype: Any, meta: Metadata, fix: bool) -> Memo[Any]:
    import polars as pl

    frame = pl.from_arrow(data.table.select([name]))
    assert isinstance(frame, pl.DataFrame)
    if fix:
        frame = frame.select(_rule(name, dtype, meta))
    series = frame.to_series()
    # polars counts a string's bytes; each value is also a 16-byte view.
    return Memo(series, nbytes=int(series.estimated_size()) + 16 * len(series))


@functools.lru_cache(maxsize=4096)
def _allowed(values: tuple[Any, ...], dtype: Any) -> Any:
    import polars as pl

    return pl.lit(pl.Series(list(values), dtype=dtype)).implode()


def _rule(name: str, dtype: Any, meta: Metadata) -> Any:
    """The domain rule of one column as a polars expression."""
    import polars as pl

    expr = pl.col(name).cast(dtype, strict=False)
    if dtype == pl.Float64:
        expr = expr.fill_nan(None)
    categories = meta.columns[name].categories
    if categories:
        expr = pl.when(expr.is_in(_allowed(tuple(categories), dtype))).then(expr).otherwise(None)
    return expr.alias(name)
