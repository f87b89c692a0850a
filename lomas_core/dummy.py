"""Dummy datasets: synthetic tables made from public metadata only.

A dummy dataset has the real dataset's columns and types but random values drawn within the
metadata's bounds and categories. Researchers use it to develop queries for free; it never touches
private data. Generation is deterministic for a given (metadata, rows, seed).
"""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lomas_core.data import DataHandle
from lomas_core.digest import short_digest
from lomas_core.metadata import ColumnMetadata, Metadata

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

__all__ = ["NULL_RATE", "dummy_handle", "make_dummy", "metadata_hash"]

#: Share of nulls in nullable columns.
NULL_RATE = 0.1
_DEFAULT_NUMERIC = (0.0, 100.0)
_DEFAULT_DATES = (datetime(2000, 1, 1), datetime(2030, 1, 1))
#: Dummies up to this many cells are memoized (tables are immutable, so sharing is safe).
_MEMO_MAX_CELLS = 200_000
_MEMO_ENTRIES = 32

_memo: OrderedDict[tuple[str, str, int, int], DataHandle] = OrderedDict()
_memo_lock = threading.Lock()


def metadata_hash(metadata: Metadata) -> str:
    """A stable digest of the metadata (used in memo keys and versions)."""
    return short_digest(metadata.model_dump_json())


def _numeric_bounds(col: ColumnMetadata) -> tuple[float, float]:
    lo = float(col.lower) if col.lower is not None else None
    hi = float(col.upper) if col.upper is not None else None
    if lo is None and hi is None:
        return _DEFAULT_NUMERIC
    if lo is None:
        assert hi is not None
        return (hi - 100.0, hi)
    if hi is None:
        return (lo, lo + 100.0)
    return (lo, hi)


def _as_datetime(raw: Any) -> datetime | None:
    if raw is None:
        return None
    if isinstance(raw, (int, float)):
        return datetime.fromtimestamp(float(raw), tz=UTC).replace(tzinfo=None)
    try:
        parsed = datetime.fromisoformat(str(raw))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def _column(name: str, col: ColumnMetadata, rows: int, rng: np.random.Generator) -> pa.Array:
    import numpy as np
    import pyarrow as pa

    values: Any
    if col.categories is not None:
        picks = rng.integers(0, len(col.categories), size=rows)
        cats = col.categories
        if col.type == "int":
            values, dtype = [int(cats[i]) for i in picks], pa.int64()
        elif col.type == "float":
            values, dtype = [float(cats[i]) for i in picks], pa.float64()
        elif col.type == "boolean":
            values, dtype = [bool(cats[i]) for i in picks], pa.bool_()
        elif col.type == "datetime":
            values, dtype = [_as_datetime(cats[i]) for i in picks], pa.timestamp("us")
        else:
            values, dtype = [str(cats[i]) for i in picks], pa.string()
    elif col.type == "int":
        lo, hi = _numeric_bounds(col)
        ilo, ihi = int(np.ceil(lo)), int(np.floor(hi))
        if ihi < ilo:
            ihi = ilo
        values, dtype = rng.integers(ilo, ihi, size=rows, endpoint=True), pa.int64()
    elif col.type == "float":
        lo, hi = _numeric_bounds(col)
        values, dtype = rng.uniform(lo, hi, size=rows), pa.float64()
    elif col.type == "boolean":
        values, dtype = rng.random(rows) < 0.5, pa.bool_()
    elif col.type == "datetime":
        start = _as_datetime(col.lower) or _DEFAULT_DATES[0]
        end = _as_datetime(col.upper) or max(_DEFAULT_DATES[1], start)
        span = max(int((end - start).total_seconds()), 0)
        offsets = rng.integers(0, span, size=rows, endpoint=True)
        base = np.datetime64(start, "us")
        values, dtype = base + offsets.astype("timedelta64[s]"), pa.timestamp("us")
    else:
        letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
        codes = rng.integers(0, len(letters), size=(rows, 6))
        values, dtype = ["".join(letters[r]) for r in codes], pa.string()
    mask = rng.random(rows) < NULL_RATE if col.nullable else None
    return pa.array(values, type=dtype, mask=mask)


def make_dummy(metadata: Metadata, rows: int, seed: int, *, dataset: str = "") -> pa.Table:
    """A synthetic table with the metadata's columns and types, deterministic in (metadata, rows, seed).

    Numbers are uniform within the bounds (defaults when unbounded), strings come from the
    categories (or are synthetic), datetimes lie within the bounds, nullable columns get about
    :data:`NULL_RATE` nulls.
    """
    return dummy_handle(metadata, rows, seed, dataset=dataset).table


def _generate(metadata: Metadata, rows: int, seed: int) -> pa.Table:
    import numpy as np
    import pyarrow as pa

    arrays = {}
    for name, col in metadata.columns.items():
        # One generator per column: adding a column does not change the others' values.
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        arrays[name] = _column(name, col, rows, rng)
    return pa.table(arrays)


def dummy_handle(metadata: Metadata, rows: int, seed: int, *, dataset: str = "") -> DataHandle:
    """A :class:`DataHandle` over a dummy table; small ones are memoized and shared."""
    if rows < 0 or seed < 0:
        raise ValueError("rows and seed must be non-negative")
    digest = metadata_hash(metadata)
    key = (dataset, digest, rows, seed)
    with _memo_lock:
        handle = _memo.get(key)
        if handle is not None:
            _memo.move_to_end(key)
            return handle
    handle = DataHandle(dataset, f"dummy-{digest}-{rows}-{seed}", _generate(metadata, rows, seed),
                        dummy=True)
    if rows * len(metadata.columns) <= _MEMO_MAX_CELLS:
        with _memo_lock:
            _memo[key] = handle
            while len(_memo) > _MEMO_ENTRIES:
                _memo.popitem(last=False)
    return handle
