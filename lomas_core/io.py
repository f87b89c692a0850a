"""The one reading path for every adapter: CSV and Parquet through fsspec into Arrow.

Adapters (local, http, s3, third-party ones) open a file-like object (or fetch the bytes) with their
own filesystem or transport and hand it here, so parsing, format detection, metadata reading and
schema checks behave the same whatever the source.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any, cast

import yaml

from lomas_core.errors import DatasetUnavailable, InvalidRequest
from lomas_core.reads import note_read

if TYPE_CHECKING:
    import fsspec
    import pyarrow as pa

    from lomas_core.metadata import Metadata

__all__ = [
    "CSV_NULL_VALUES",
    "FORMATS",
    "check_format",
    "check_schema",
    "detect_format",
    "read_metadata",
    "read_metadata_bytes",
    "read_table",
    "read_table_bytes",
    "read_table_from_fs",
    "target_type",
]

FORMATS = ("csv", "parquet")
_GZIP_MAGIC = b"\x1f\x8b"
#: Unquoted CSV fields read as null in every column (string columns included). A quoted field is
#: always a value: ``"NA"`` is the text NA and ``""`` the empty string, which is also how pyarrow
#: and most writers tell an empty string from a missing value.
CSV_NULL_VALUES = ("", "NA", "N/A", "n/a", "NULL", "null", "NaN", "nan")


def detect_format(path: str, declared: str | None = None) -> str:
    """The table format: ``declared`` when given, else from the file extension.

    Raises:
        DatasetUnavailable: unknown format (use :func:`check_format` when validating options).
    """
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
        f"cannot tell the format of '{lowered.rsplit('/', 1)[-1]}'; set options.format to csv or parquet")


def check_format(path: str, declared: str | None = None) -> str:
    """Like :func:`detect_format` but raises InvalidRequest: for ``Adapter.check_options``."""
    try:
        return detect_format(path, declared)
    except DatasetUnavailable as exc:
        raise InvalidRequest(exc.message) from None


def _seekable(stream: IO[bytes]) -> IO[bytes]:
    try:
        if stream.seekable():
            return stream
    except (AttributeError, ValueError):
        pass
    return io.BytesIO(stream.read())


def _maybe_gunzip(stream: IO[bytes]) -> IO[bytes]:
    # pyarrow only infers compression from a path; sources hand us streams, so sniff the bytes.
    head = stream.read(2)
    stream.seek(0)
    if head == _GZIP_MAGIC:
        return cast(IO[bytes], gzip.GzipFile(fileobj=stream, mode="rb"))
    return stream


def read_table(dataset: str, stream: IO[bytes], fmt: str) -> pa.Table:
    """Parse a CSV (optionally gzip-compressed) or Parquet byte stream into an Arrow table.

    In CSV, the unquoted fields of :data:`CSV_NULL_VALUES` (the empty field among them) are nulls,
    whatever the column's type.

    Raises:
        DatasetUnavailable(touched=True): the content cannot be parsed (the message names the
        dataset, never the content).
    """
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    note_read()  # from here on a failure may depend on the content: its charge stays
    try:
        stream = _seekable(stream)
        if fmt == "parquet":
            return pq.read_table(stream)
        convert = pacsv.ConvertOptions(null_values=list(CSV_NULL_VALUES), strings_can_be_null=True,
                                       quoted_strings_can_be_null=False)
        return pacsv.read_csv(_maybe_gunzip(stream), convert_options=convert)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types; none may leak content
        raise DatasetUnavailable(
            f"dataset '{dataset}' could not be parsed as {fmt}", touched=True,
            reason=type(exc).__name__) from None


def read_table_bytes(dataset: str, data: bytes, fmt: str) -> pa.Table:
    """:func:`read_table` on bytes already fetched (HTTP body, S3 object)."""
    return read_table(dataset, io.BytesIO(data), fmt)


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
    """Parse a YAML (or JSON) metadata document into a mapping (validated later as Metadata)."""
    try:
        doc = yaml.safe_load(stream)
    except yaml.YAMLError:
        raise DatasetUnavailable(f"dataset '{dataset}': metadata is not valid YAML") from None
    except UnicodeDecodeError:
        raise DatasetUnavailable(f"dataset '{dataset}': metadata is not UTF-8 text") from None
    if not isinstance(doc, Mapping):
        raise DatasetUnavailable(f"dataset '{dataset}': metadata must be a mapping")
    return dict(doc)


def read_metadata_bytes(dataset: str, data: bytes) -> dict[str, Any]:
    """:func:`read_metadata` on bytes already fetched."""
    return read_metadata(dataset, io.BytesIO(data))


def target_type(kind: str) -> pa.DataType:
    """The Arrow type engines see for a metadata column type."""
    import pyarrow as pa

    return {"int": pa.int64(), "float": pa.float64(), "string": pa.string(),
            "boolean": pa.bool_(), "datetime": pa.timestamp("us")}[kind]


def _matches(kind: str, dtype: pa.DataType) -> bool:
    import pyarrow.types as t

    if t.is_dictionary(dtype):
        dtype = dtype.value_type
    checks = {
        "int": t.is_integer,
        "float": t.is_floating,
        "string": lambda d: t.is_string(d) or t.is_large_string(d),
        "boolean": t.is_boolean,
        "datetime": lambda d: t.is_timestamp(d) or t.is_date(d),
    }
    return bool(checks[kind](dtype))


def check_schema(dataset: str, table: pa.Table, metadata: Metadata) -> pa.Table:
    """Check the table against its metadata and keep only the metadata's columns.

    Columns the metadata does not list are dropped, so no engine can reach them. A column whose
    Arrow type does not match the metadata type is converted when that is lossless (CSV digits in
    a ``string`` column, integers in a ``float`` column, whole floats in an ``int`` column), so
    engines see the same types on real data as on the dummy dataset.

    Raises:
        DatasetUnavailable(touched=True): names the missing or unconvertible columns (names and
        types are public metadata; values are never shown).
    """
    import pyarrow as pa

    wanted = list(metadata.columns)
    missing = [c for c in wanted if c not in table.column_names]
    if missing:
        raise DatasetUnavailable(
            f"dataset '{dataset}' does not match its metadata: missing column(s) "
            + ", ".join(missing), touched=True)
    table = table.select(wanted)
    bad: list[str] = []
    for i, name in enumerate(wanted):
        kind = metadata.columns[name].type
        column = table.column(i)
        if _matches(kind, column.type):
            continue
        try:
            converted = column.cast(target_type(kind), safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            bad.append(f"{name} ({kind})")
            continue
        table = table.set_column(i, name, converted)
    if bad:
        raise DatasetUnavailable(
            f"dataset '{dataset}' does not match its metadata: column(s) cannot be read as the "
            "declared type: " + ", ".join(bad), touched=True)
    return table
