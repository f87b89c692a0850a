"""Test data as bytes, without pytest (plugins' own test servers use it)."""

from __future__ import annotations

from typing import Any

__all__ = ["table_bytes"]


def table_bytes(table: Any, fmt: str) -> bytes:
    """``table`` (a ``pyarrow.Table``) written as CSV or Parquet bytes, to serve in tests."""
    import io

    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    if fmt == "csv":
        pacsv.write_csv(table, buffer)
    else:
        pq.write_table(table, buffer)
    return buffer.getvalue()
