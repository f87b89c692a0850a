"""The ``postgresql`` source: a table in the data owner's PostgreSQL, queried read-only in place.

The connection string is a scoped secret (``secrets.<name>: {..., adapters: [postgresql],
allowed_hosts: [db.example.org]}``): the source connects only to a host that the secret's entry
lists. Every session is read-only (``default_transaction_read_only``), has a
``statement_timeout``, reads with ``standard_conforming_strings`` on and ``search_path`` set to ``pg_catalog``
(the table is always schema-qualified), and comes from a small pool per dataset. The table is
exposed as ``df`` through a CTE (:mod:`lomas_source_postgresql.view`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lomas_core.api import (
    TABLE_NAME,
    ConfigError,
    DatasetUnavailable,
    InvalidRequest,
    Metadata,
    PluginContext,
    SqlSource,
    SqlTarget,
    note_read,
    parse_options,
    quote,
)
from lomas_source_postgresql.view import view_sql

__all__ = ["PostgresSource", "PostgresSourceOptions", "PostgresTarget"]

#: Rows fetched per round trip (and per Arrow batch) when a dataset is read into memory.
_BATCH_ROWS = 50_000

_NAME = r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$"


class PostgresSourceOptions(BaseModel):
    """Server-side options (config ``adapters.postgresql``)."""

    model_config = ConfigDict(extra="forbid")

    #: Longest a statement may run on the database (its ``statement_timeout``).
    statement_timeout_seconds: float = Field(default=120.0, gt=0, le=86400)
    #: Connections kept per dataset (the pool's maximum; the minimum is 1).
    pool_size: int = Field(default=4, ge=1, le=64)
    connect_timeout_seconds: float = Field(default=10.0, gt=0, le=600)


class PostgresDatasetOptions(BaseModel):
    """Per-dataset options: the secret holding the connection string, and the table."""

    model_config = ConfigDict(extra="forbid")

    credentials: str
    table: str = Field(pattern=_NAME)
    schema_: str = Field(default="public", alias="schema", pattern=_NAME)


class PostgresSource(SqlSource):
    """Tables in PostgreSQL databases reached with scoped connection-string secrets."""

    dialect = "postgresql"
    loadable = True

    Options = PostgresSourceOptions

    def __init__(self, options: PostgresSourceOptions, context: PluginContext) -> None:
        super().__init__(options, context)
        self.options: PostgresSourceOptions = options
        self._context = context

    def _options(self, options: Mapping[str, Any]) -> PostgresDatasetOptions:
        return parse_options(PostgresDatasetOptions, options, "postgresql source")

    def _conninfo(self, opts: PostgresDatasetOptions) -> str:
        """The secret's connection string, once its host is checked against the secret's entry."""
        from psycopg.conninfo import conninfo_to_dict

        ref = self._context.secret_ref(opts.credentials)
        value = self._context.secret(opts.credentials)
        try:
            params = conninfo_to_dict(value)
        except Exception:  # noqa: BLE001 - the message could quote the secret
            raise ConfigError(f"secret '{opts.credentials}' is not a PostgreSQL connection "
                              "string") from None
        hosts = [h for h in str(params.get("host") or "").split(",") if h]
        hosts += [h for h in str(params.get("hostaddr") or "").split(",") if h]
        allowed = set(ref.allowed_hosts or [])
        if not hosts or any(h not in allowed for h in hosts):
            raise ConfigError(f"secret '{opts.credentials}' names a database host that its entry "
                              "does not list under allowed_hosts")
        return value

    def check_options(self, options: Mapping[str, Any]) -> None:
        opts = self._options(options)
        try:
            self._conninfo(opts)
        except ConfigError as exc:
            raise InvalidRequest(exc.message) from None

    def version(self, options: Mapping[str, Any]) -> str | None:
        self._conninfo(self._options(options))
        return None  # a live table has no version: sessions stay open, queries see its present

    def open(self, dataset: str, options: Mapping[str, Any], metadata: Metadata) -> SqlTarget:
        opts = self._options(options)
        return PostgresTarget(dataset, self._conninfo(opts), opts, metadata, self.options)


def _value(value: Any) -> Any:
    """A numeric from the database as Python's int or float (NULL for a non-finite one)."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        if value == value.to_integral_value():
            return int(value)
        number = float(value)
        return number if math.isfinite(number) else None
    return value


class PostgresTarget(SqlTarget):
    """One dataset's pool of read-only sessions, with ``df`` defined by the metadata."""

    dialect = "postgresql"

    def __init__(self, dataset: str, conninfo: str, opts: PostgresDatasetOptions,
                 metadata: Metadata, options: PostgresSourceOptions) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self.dataset = dataset
        self.metadata = metadata
        timeout_ms = int(options.statement_timeout_seconds * 1000)
        settings = (f"-c default_transaction_read_only=on -c statement_timeout={timeout_ms} "
                    "-c standard_conforming_strings=on -c search_path=pg_catalog "
                    f"-c idle_in_transaction_session_timeout={timeout_ms}")
        self._pool = ConnectionPool(
            conninfo, min_size=1, max_size=options.pool_size, open=False,
            timeout=options.connect_timeout_seconds, name=f"lomas-{dataset}",
            kwargs={"autocommit": True, "options": settings,
                    "connect_timeout": max(1, int(options.connect_timeout_seconds))})
        table = f"{quote(opts.schema_)}.{quote(opts.table)}"
        try:
            self._pool.open(wait=True, timeout=options.connect_timeout_seconds)
            with self._pool.connection() as conn:
                types: dict[Any, Any] = dict(conn.execute(
                    "SELECT a.attname, t.typname FROM pg_catalog.pg_attribute a "
                    "JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
                    "WHERE a.attrelid = CAST(%s AS regclass) AND a.attnum > 0 "
                    "AND NOT a.attisdropped", [table]).fetchall())
        except (psycopg.Error, Exception) as exc:  # noqa: BLE001 - never pass the driver's text
            self._pool.close()
            raise DatasetUnavailable(f"dataset '{dataset}': its PostgreSQL table could not be "
                                     f"reached ({type(exc).__name__})", touched=False) from None
        note_read()
        try:
            select, names = view_sql(table, metadata, {str(k): str(v) for k, v in types.items()})
        except ValueError as exc:
            self._pool.close()
            raise DatasetUnavailable(f"dataset '{dataset}' does not match its metadata: {exc}",
                                     touched=True) from None
        self._prefix = f"WITH {TABLE_NAME} AS ({select}) "
        self.columns = tuple(names)
        self._closed = threading.Event()

    def fetch(self, statement: str) -> list[Any]:
        with self._pool.connection() as conn:
            cursor = conn.execute(self._prefix + statement)  # type: ignore[call-overload]
            names = tuple(d.name for d in cursor.description or ())
            return [names, *(tuple(_value(v) for v in row) for row in cursor.fetchall())]

    def arrow_reader(self, statement: str, schema: Any) -> Any:
        """The rows through a server-side cursor, ``_BATCH_ROWS`` at a time, each batch built
        column by column in ``schema``'s types (numbers cast back from ``numeric`` in SQL)."""
        import pyarrow as pa

        casts = {pa.int64(): "bigint", pa.float64(): "double precision"}
        columns = ", ".join(
            f"CAST({quote(f.name)} AS {casts[f.type]}) AS {quote(f.name)}" if f.type in casts
            else quote(f.name) for f in schema)
        sql = self._prefix + f"SELECT {columns} FROM ({statement}) AS lomas_load"

        def batches() -> Iterator[Any]:
            with self._pool.connection() as conn, conn.transaction():
                with conn.cursor(name="lomas_load") as cursor:
                    cursor.execute(sql)  # type: ignore[call-overload]
                    while rows := cursor.fetchmany(_BATCH_ROWS):
                        values = list(zip(*rows, strict=True))
                        yield pa.RecordBatch.from_arrays(
                            [pa.array(values[i], type=f.type) for i, f in enumerate(schema)],
                            schema=schema)

        return pa.RecordBatchReader.from_batches(schema, batches())

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._pool.close()
