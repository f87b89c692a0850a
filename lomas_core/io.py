"""The one reading path for every adapter: CSV and Parquet through fsspec into Arrow.

Adapters (local, http, s3, third-party ones) open a file-like object with their own filesystem or
transport and hand it here, so parsing, format detection, metadata reading and schema checks behave
the same whatever the source.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

import yaml

from lomas_core.errors import DatasetUnavailable

if TYPE_CHECKING:
    import fsspec
    import pyarrow as pa

    from lomas_core.metadata import Metadata

__all__ = ["check_schema", "detect_format", "read_metadata", "read_table", "read_table_from_fs"]

FORMATS = ("csv", "parquet")


def detect_format(path: str, declared: str | None = None) -> str:
    """The table format: ``declared`` when given, else from the file extension."""
    if declared:
        fmt = declared.lower()
        if fmt not in FORMATS:
            raise DatasetUnavailable(f"unsupported format '{declared}'; use one of: csv, parquet")
        return fmt
    lowered = path.lower().split("?", 1)[0]
    if lowered.endswith((".parquet", ".pq")):
        return "parquet"
    if lowered.endswith((".csv", ".csv.gz", ".txt")):
        return "csv"
    raise DatasetUnavailable(
        f"cannot tell the format of '{path.rsplit('/', 1)[-1]}'; set options.format to csv or parquet")


def read_table(dataset: str, stream: IO[bytes], fmt: str) -> pa.Table:
    """Parse a CSV or Parquet byte stream into an Arrow table.

    Raises:
        DatasetUnavailable(touched=True): the content cannot be parsed (the message names the
        dataset, never the content).
    """
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        if fmt == "parquet":
            return pq.read_table(stream)
        return pacsv.read_csv(stream)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types; none may leak content
        raise DatasetUnavailable(
            f"dataset '{dataset}' could not be parsed as {fmt}", touched=True,
            reason=type(exc).__name__) from None


def read_table_from_fs(dataset: str, fs: fsspec.AbstractFileSystem, path: str,
                       fmt: str | None = None) -> pa.Table:
    """Open ``path`` on an fsspec filesystem and parse it (see :func:`read_table`)."""
    fmt = detect_format(path, fmt)
    try:
        handle = fs.open(path, "rb")
    except FileNotFoundError:
        raise DatasetUnavailable(f"dataset '{dataset}': source file not found") from None
    except PermissionError:
        raise DatasetUnavailable(f"dataset '{dataset}': access to the source was refused") from None
    except OSError as exc:
        raise DatasetUnavailable(
            f"dataset '{dataset}': source cannot be opened ({type(exc).__name__})") from None
    with handle:
        return read_table(dataset, handle, fmt)


def read_metadata(dataset: str, stream: IO[bytes]) -> dict[str, Any]:
    """Parse a YAML (or JSON) metadata document."""
    try:
        doc = yaml.safe_load(stream)
    except yaml.YAMLError:
        raise DatasetUnavailable(f"dataset '{dataset}': metadata is not valid YAML") from None
    if not isinstance(doc, Mapping):
        raise DatasetUnavailable(f"dataset '{dataset}': metadata must be a mapping")
    return dict(doc)


def check_schema(dataset: str, table: pa.Table, metadata: Metadata) -> pa.Table:
    """Check that every metadata column is in the table, and keep only those columns.

    Columns the metadata does not list are dropped, so no engine can reach them.

    Raises:
        DatasetUnavailable(touched=True): names the missing columns (names are public metadata).
    """
    wanted = list(metadata.columns)
    missing = [c for c in wanted if c not in table.column_names]
    if missing:
        raise DatasetUnavailable(
            f"dataset '{dataset}' does not match its metadata: missing column(s) "
            + ", ".join(missing), touched=True)
    return table.select(wanted)
