"""Push-down sources: datasets that answer SQL where they live.

A push-down source is a data adapter with one more capability (:class:`SqlSource`): instead of
reading the whole table into memory, it opens a :class:`SqlTarget`, a database session that
exposes the dataset as one table named ``df`` and runs statements that lomas generated and
rendered for the target's :attr:`~SqlTarget.dialect`. Only aggregate rows come back; noise, the
key policy and the shape check stay in lomas (in the engine).

Why a capability on adapters rather than a new plugin kind: a source is configured, enabled,
named by a dataset description and given scoped secrets exactly like an adapter, so every
existing rule (``adapters:`` section, ``secrets.<name>.adapters``, ``lomas admin dataset check``)
applies to it unchanged.

What a source must guarantee on its target (the rules :mod:`lomas_core.prepare` applies to
tables loaded into memory, here enforced by the SQL that defines ``df``):

1. only the metadata's columns, cast to their declared types (a value that does not convert is
   NULL, a float NaN is NULL);
2. a value of a column with ``categories`` that is not among them is NULL (rendered as ``CASE``);
3. with a ``private_id``: rows without an id are dropped and each id keeps at most ``max_ids``
   rows, chosen by an order that depends on that person's own rows only;
4. ``rows``: :meth:`SqlTarget.check_rows` refuses a table with more rows than declared;
5. the session is read-only and locked down (no other table, file or network access that a
   statement could reach), with bounded memory and time.

Engines that can push down (``Engine.pushdown``) receive a :class:`SourceHandle` instead of an
in-memory table. For the others, a source that can stream (:attr:`SqlSource.loadable`) is read
into memory through the same ``df`` (:meth:`SqlSource.load_table`, as Arrow batches, within
``limits.max_load_rows`` and ``limits.max_load_bytes``) and cached like any adapter's table;
a source that cannot is refused before any charge.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from lomas_core.adapter import Adapter, Loaded
from lomas_core.data import DataHandle
from lomas_core.errors import DatasetUnavailable

if TYPE_CHECKING:
    import pyarrow as pa

    from lomas_core.metadata import Metadata

__all__ = ["TABLE_NAME", "SourceHandle", "SqlSource", "SqlTarget", "TargetCache", "quote",
           "sql_literal", "target_key", "arrow_schema", "load_limit_message"]

#: The one table a target exposes.
TABLE_NAME = "df"


def quote(name: str) -> str:
    """A standard SQL quoted identifier (DuckDB, PostgreSQL, Spark with ANSI quoting)."""
    if "\x00" in name:
        raise ValueError("NUL in an identifier")
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: Any, kind: str) -> str:
    """A metadata value (a category) as a standard SQL literal of a column type ``kind``
    (``string``, ``int``, ``float``, ``boolean``); strings use ``''`` doubling only, which
    DuckDB and PostgreSQL (``standard_conforming_strings``) read alike.

    Raises:
        ValueError: the value is not one of that type.
    """
    import math

    if kind == "string":
        text = str(value)
        if "\x00" in text:
            raise ValueError("NUL in a string value")
        return "'" + text.replace("'", "''") + "'"
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ValueError("not a boolean")
        return "TRUE" if value else "FALSE"
    if isinstance(value, bool):
        raise ValueError("not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    if kind == "int":
        if not number.is_integer():
            raise ValueError("not an integer")
        return str(int(value))
    return repr(number)


def arrow_schema(metadata: Metadata, columns: tuple[str, ...]) -> pa.Schema:
    """The Arrow schema of ``df``'s ``columns`` when read into memory (metadata types)."""
    import pyarrow as pa

    kinds = {"int": pa.int64(), "float": pa.float64(), "string": pa.string(),
             "boolean": pa.bool_(), "datetime": pa.timestamp("us")}
    return pa.schema([(c, kinds.get(metadata.columns[c].type, pa.string())) for c in columns])


def load_limit_message(dataset: str, limit: str, value: int) -> str:
    """Why a table on a source is not read into memory, and how an administrator raises it."""
    return (f"dataset '{dataset}' is larger than this server reads into memory for engines that "
            f"cannot run on its source ({limit}: {value}); use an engine that runs there "
            f"(smartnoise_sql) or ask an administrator to raise limits.{limit}")


class SqlTarget(ABC):
    """An open session on a source holding one dataset version as the table ``df``.

    Thread-safe: several queries may call :meth:`fetch` at once.
    """

    #: The SQL dialect statements must be rendered in (``duckdb``, ``postgresql``, ``spark``).
    dialect: ClassVar[str] = ""

    #: The columns of ``df`` (the metadata's columns present in the source).
    columns: tuple[str, ...]
    #: The dataset's name and public metadata (used by the default :meth:`check_rows`).
    dataset: str
    metadata: Metadata

    @abstractmethod
    def fetch(self, statement: str) -> list[Any]:
        """Run one SELECT that lomas rendered for :attr:`dialect`; the column names as a tuple,
        then the rows as tuples. Raises on any database error (the caller keeps the charge)."""

    def arrow_reader(self, statement: str, schema: pa.Schema) -> pa.RecordBatchReader:
        """Run one SELECT and stream its rows as Arrow batches of ``schema`` (for reading a
        dataset into memory); sources with :attr:`SqlSource.loadable` implement it."""
        raise NotImplementedError

    def check_rows(self) -> int:
        """The number of rows of ``df``; raises DatasetUnavailable(touched=True) when it is over
        the metadata's ``rows``. By default a ``count(*)`` through :meth:`fetch`."""
        rows = int(self.fetch(f"SELECT count(*) FROM {TABLE_NAME}")[1][0])
        if self.metadata.rows is not None and rows > self.metadata.rows:
            raise DatasetUnavailable(
                f"dataset '{self.dataset}' has more rows than its public metadata declares; the "
                "data owner must correct 'rows'", touched=True)
        return rows

    @abstractmethod
    def close(self) -> None:
        """Release the session (connections, pools)."""


class SqlSource(Adapter):
    """An adapter whose datasets answer SQL themselves (see the module docstring)."""

    #: The dialect of the targets this source opens.
    dialect: ClassVar[str] = ""
    #: Whether its targets stream ``df`` as Arrow (:meth:`SqlTarget.arrow_reader`), so engines
    #: that cannot push down may read the dataset into memory.
    loadable: ClassVar[bool] = False

    @abstractmethod
    def open(self, dataset: str, options: Mapping[str, Any], metadata: Metadata) -> SqlTarget:
        """Open a locked-down session on the dataset described by ``options`` with ``df``
        defined by ``metadata`` (see the module docstring for the rules it must enforce).

        Raises:
            DatasetUnavailable: the source is unreachable (``touched=False``) or its content does
                not match the metadata (``touched=True``). Messages never carry secrets or values.
        """

    def load(self, dataset: str, options: Mapping[str, Any]) -> Loaded:
        """Without metadata there is no ``df``: sources are read through :meth:`load_table`."""
        raise DatasetUnavailable(f"dataset '{dataset}' is answered by its {self.name} source "
                                 "and cannot be read into memory", touched=False)

    def load_table(self, dataset: str, options: Mapping[str, Any], metadata: Metadata,
                   max_rows: int | None, max_bytes: int | None, *,
                   sink: str | None = None) -> Loaded:
        """``df`` (the metadata's rules applied on the source) read into one Arrow table, batch
        by batch: the batches become the table's chunks, so memory holds one copy. With ``sink``
        (a file path) each batch is written there as it arrives, as an Arrow IPC file, and the
        table returned is memory-mapped from it: the process holds one batch at a time.

        Raises:
            DatasetUnavailable: the source is unreachable (``touched=False``), or the table is
                over ``rows``, ``max_rows`` or ``max_bytes`` (``touched=True``: the count or the
                bytes come from the data, so the charge stays).
        """
        import pyarrow as pa

        if not self.loadable:
            raise DatasetUnavailable(f"dataset '{dataset}' is answered by its {self.name} source "
                                     "and cannot be read into memory", touched=False)
        try:
            version = self.version(options) or ""
        except DatasetUnavailable as exc:
            reason = exc.message.removeprefix("dataset '?': ")
            raise DatasetUnavailable(f"dataset '{dataset}': {reason}", touched=False) from None
        target = self.open(dataset, options, metadata)
        try:
            rows = target.check_rows()
            if max_rows is not None and rows > max_rows:
                raise DatasetUnavailable(load_limit_message(dataset, "max_load_rows", max_rows),
                                         touched=True, reason="load_limit")
            schema = arrow_schema(metadata, target.columns)
            columns = ", ".join(quote(c) for c in target.columns)
            reader = target.arrow_reader(f"SELECT {columns} FROM {TABLE_NAME}", schema)
            batches: list[pa.RecordBatch] = []
            total = 0
            with contextlib.ExitStack() as stack:
                writer = None
                if sink is not None:
                    out = stack.enter_context(pa.OSFile(sink, "wb"))
                    writer = stack.enter_context(pa.ipc.new_file(out, schema))
                for batch in reader:
                    total += batch.nbytes
                    if max_bytes is not None and total > max_bytes:
                        raise DatasetUnavailable(
                            load_limit_message(dataset, "max_load_bytes", max_bytes),
                            touched=True, reason="load_limit")
                    if writer is not None:
                        writer.write_batch(batch)
                    else:
                        batches.append(batch)
            if sink is not None:
                return Loaded(pa.ipc.open_file(pa.memory_map(sink, "r")).read_all(), version)
            return Loaded(pa.Table.from_batches(batches, schema=schema), version)
        finally:
            target.close()


class SourceHandle(DataHandle):
    """What a push-down engine receives for a dataset on a source: the open target, no table."""

    def __init__(self, dataset: str, version: str, target: SqlTarget) -> None:
        super().__init__(dataset, version, None)  # type: ignore[arg-type]
        self.target = target

    @property  # type: ignore[override]
    def table(self) -> Any:
        raise DatasetUnavailable(f"dataset '{self.dataset}' is on a push-down source; this "
                                 "engine cannot read it into memory", touched=False)

    @table.setter
    def table(self, value: Any) -> None:
        if value is not None:
            raise TypeError("a source handle holds no table")

    @property
    def nbytes(self) -> int:
        return 0


def target_key(dataset: str, adapter: str, options: Mapping[str, Any], metadata: Metadata,
               version: str | None) -> str:
    """A key naming one dataset version on one source under one metadata (for :class:`TargetCache`)."""
    blob = json.dumps([dataset, adapter, dict(options), metadata.model_dump(mode="json"), version],
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class TargetCache:
    """Open targets kept between queries (least recently used closed first), one per key.

    Opening a target checks its row count once (``rows``); later queries reuse the session.
    """

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._targets: OrderedDict[str, SqlTarget] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}

    def get(self, key: str, source: SqlSource, dataset: str, options: Mapping[str, Any],
            metadata: Metadata) -> SqlTarget:
        with self._lock:
            target = self._targets.get(key)
            if target is not None:
                self._targets.move_to_end(key)
                return target
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                target = self._targets.get(key)
            if target is not None:
                return target
            target = source.open(dataset, options, metadata)
            try:
                target.check_rows()
            except BaseException:
                target.close()
                raise
            with self._lock:
                self._targets[key] = target
                while len(self._targets) > self.size:
                    _, old = self._targets.popitem(last=False)
                    old.close()
                self._key_locks.pop(key, None)
            return target

    def clear(self) -> None:
        with self._lock:
            for target in self._targets.values():
                target.close()
            self._targets.clear()
