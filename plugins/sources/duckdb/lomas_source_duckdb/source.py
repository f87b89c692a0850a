"""The ``duckdb`` source: Parquet and CSV files queried in place by a locked-down DuckDB.

Each dataset gets its own in-memory DuckDB connection holding one view, ``df``, over its file,
folder of Parquet files or glob (see :mod:`lomas_source_duckdb.view`), on the server's disk or,
through an fsspec filesystem registered on the connection, in S3 or behind an HTTP(S) URL (see
:mod:`lomas_source_duckdb.remote`). The connection can read only the dataset's own folder
(``allowed_directories``/``allowed_paths`` with ``enable_external_access`` off), may not install
or load extensions, has bounded ``memory_limit`` and ``threads``, and its configuration is locked
before the first statement from lomas runs.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lomas_core.api import (
    TABLE_NAME,
    AllowedDirs,
    ConfigError,
    DatasetUnavailable,
    FileDatasetOptions,
    HeaderSecret,
    InvalidRequest,
    Metadata,
    PluginContext,
    SqlSource,
    SqlTarget,
    files_version,
    note_read,
    parse_options,
    resolve_relative_options,
    worker_threads,
)
from lomas_core.api import (
    sql_literal as literal,
)
from lomas_source_duckdb.access import RemoteAccess, remote_access
from lomas_source_duckdb.remote import HttpOptions, RemotePath, S3Options, is_remote
from lomas_source_duckdb.view import view_sql

__all__ = ["DuckDBSource", "DuckDBSourceOptions", "DuckDBTarget"]

#: Rows per Arrow batch when a dataset is read into memory.
_BATCH_ROWS = 122_880


class DuckDBSourceOptions(BaseModel):
    """Server-side options (config ``adapters.duckdb``)."""

    model_config = ConfigDict(extra="forbid")

    #: Folders datasets may live in (symlinks resolved first).
    allowed_dirs: list[str] = Field(default_factory=list)
    #: DuckDB's ``memory_limit`` for each dataset's connection.
    memory_limit: str = Field(default="1GB", pattern=r"^[0-9]+(\.[0-9]+)?\s*[KMGT]i?B$")
    #: DuckDB's ``threads`` for each dataset's connection; by default the execution worker's
    #: share of the cores (``execution.threads_per_worker``), 2 outside a worker.
    threads: int | None = Field(default=None, ge=1, le=256)
    #: The S3 store ``s3://`` paths are read from (none: such paths are refused).
    s3: S3Options | None = None
    #: The URL prefixes ``http(s)://`` paths may be under (none: such paths are refused).
    http: HttpOptions | None = None


class DuckDBDatasetOptions(FileDatasetOptions):
    """A dataset's options: a local or remote ``path``, its ``format``, and for ``s3://``
    paths the secret holding the credentials (default ``adapters.duckdb.s3.default_credentials``)."""

    credentials: str | None = Field(default=None, min_length=1, max_length=128)
    #: Headers sent with ``http(s)://`` requests; a credential as ``{secret: <name>, prefix: ...}``.
    headers: dict[str, str | HeaderSecret] = Field(default_factory=dict)


class DuckDBSource(SqlSource):
    """Files under ``allowed_dirs``, answered by DuckDB in place."""

    dialect = "duckdb"
    loadable = True

    Options = DuckDBSourceOptions

    def __init__(self, options: DuckDBSourceOptions, context: PluginContext) -> None:
        super().__init__(options, context)
        self.options: DuckDBSourceOptions = options
        self._context = context
        self._allowed = AllowedDirs(context.config, self.options.allowed_dirs,
                                    owner="the duckdb source", section="duckdb")
        for section, module in (("s3", "s3fs"), ("http", "aiohttp")):
            if getattr(options, section) is not None and importlib.util.find_spec(module) is None:
                raise ConfigError(f"adapters.duckdb.{section} needs {module}: install "
                                  "lomas-source-duckdb[remote]")

    @classmethod
    def resolve_options(cls, options: Mapping[str, Any], base_dir: Path) -> dict[str, Any]:
        """A relative ``path`` (file, folder or glob) resolves against ``base_dir``."""
        path = options.get("path")
        if isinstance(path, str) and is_remote(path):
            return dict(options)
        return resolve_relative_options(options, base_dir, ("path",), pattern=True)

    def _options(self, options: Mapping[str, Any]) -> DuckDBDatasetOptions:
        return parse_options(DuckDBDatasetOptions, options, "duckdb source")

    def _resolve(self, raw: str) -> tuple[Path, str]:
        """(the folder the connection may read, the path or glob DuckDB reads)."""
        has_glob = any(ch in raw for ch in "*?[")
        base = Path(raw).parent if has_glob else Path(raw)
        while has_glob and any(ch in str(base) for ch in "*?["):
            base = base.parent
        resolved = self._allowed.check(base, raw)
        if has_glob:
            rest = Path(raw).relative_to(base)
            return resolved, str(resolved / rest)
        if resolved.is_dir():
            return resolved, str(resolved / "**" / "*.parquet")
        return resolved.parent, str(resolved)

    def _files(self, pattern: str) -> list[Path]:
        import glob

        return sorted(Path(p) for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))

    # -- remote paths -----------------------------------------------------------------------------

    def _access(self, opts: DuckDBDatasetOptions, values: bool = True) -> RemoteAccess:
        return remote_access(opts.path, opts.credentials, opts.headers, self.options.s3,
                             self.options.http, self._context, values=values)

    def _listed(self, what: str, opts: DuckDBDatasetOptions,
                probe: bool = False) -> tuple[RemotePath, Any, list[Any]]:
        """(path, filesystem, objects) of a remote dataset (with ``probe``, an HTTP server is
        also checked for range requests); refusals and failures are DatasetUnavailable that
        touched nothing (checked again at every use: the config may have changed since the
        dataset was registered)."""
        from lomas_source_duckdb.remotefs import build_filesystem, check_ranges, list_objects

        try:
            access = self._access(opts)
        except InvalidRequest as exc:
            raise DatasetUnavailable(f"{what}: {exc.message.removeprefix('duckdb source options: ')}"
                                     ) from None
        fs = build_filesystem(access, self.options.s3, self.options.http)
        objects = list_objects(fs, access.path, what)
        if probe:
            check_ranges(fs, access.path, objects, what)
        return access.path, fs, objects

    # -- Adapter ----------------------------------------------------------------------------------

    def check_options(self, options: Mapping[str, Any]) -> None:
        opts = self._options(options)
        if is_remote(opts.path):
            self._access(opts, values=False)
            return
        if opts.credentials is not None or opts.headers:
            raise InvalidRequest("duckdb source options: credentials and headers are for remote "
                                 "paths (s3://, http(s)://)")
        self._resolve(opts.path)

    def version(self, options: Mapping[str, Any]) -> str | None:
        opts = self._options(options)
        if is_remote(opts.path):
            from lomas_source_duckdb.remotefs import objects_version

            return objects_version(self._listed("dataset '?'", opts)[2])
        _, pattern = self._resolve(opts.path)
        files = self._files(pattern)
        return files_version(files)

    def open(self, dataset: str, options: Mapping[str, Any], metadata: Metadata) -> SqlTarget:
        opts = self._options(options)
        if is_remote(opts.path):
            path, fs, _ = self._listed(f"dataset '{dataset}'", opts, probe=True)
            return DuckDBTarget(dataset, path.folder, path.pattern, opts.file_format(), metadata,
                                self.options, filesystem=fs)
        folder, pattern = self._resolve(opts.path)
        if not self._files(pattern):
            raise DatasetUnavailable(f"dataset '{dataset}': source file not found")
        return DuckDBTarget(dataset, str(folder) + os.sep, pattern, opts.file_format(), metadata,
                            self.options)


class DuckDBTarget(SqlTarget):
    """One dataset's locked-down connection with the view ``df``."""

    dialect = "duckdb"

    def __init__(self, dataset: str, folder: str, pattern: str, fmt: str, metadata: Metadata,
                 options: DuckDBSourceOptions, filesystem: Any = None) -> None:
        """``folder`` is what the connection may read: a folder (ends with a separator) or,
        for an HTTP file, the file's URL; ``filesystem`` an fsspec filesystem for remote paths."""
        import duckdb

        self.dataset = dataset
        self.metadata = metadata
        config: dict[str, str | bool | int | float | list[str]] = {
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_community_extensions": False,
            "allow_unsigned_extensions": False,
            "python_enable_replacements": False,
            "memory_limit": options.memory_limit,
            "threads": options.threads or worker_threads() or 2,
        }
        self._con = duckdb.connect(":memory:", config=config)
        self._lock = threading.Lock()
        path = literal(pattern, "string")
        if filesystem is not None:
            self._con.register_filesystem(filesystem)
        # DuckDB takes allowed_directories only once the database runs, then external access is
        # turned off: from here on the connection reads the dataset's folder and nothing else.
        allowed = "allowed_directories" if folder.endswith(("/", os.sep)) else "allowed_paths"
        self._con.execute(f"SET {allowed} = [{literal(folder, 'string')}]")
        self._con.execute("SET enable_external_access = false")
        reader = (f"read_csv({path}, header = true, all_varchar = true)" if fmt == "csv"
                  else f"read_parquet({path})")
        try:
            note_read()  # the schema (column names) comes from the files
            present = [str(r[0]) for r in
                       self._con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()]
            select, names = view_sql(reader, metadata, present)
            self._con.execute(f"CREATE VIEW {TABLE_NAME} AS {select}")
            self._con.execute("SET lock_configuration = true")
        except ValueError as exc:
            self._con.close()
            raise DatasetUnavailable(f"dataset '{dataset}' does not match its metadata: {exc}",
                                     touched=True) from None
        except duckdb.Error:
            self._con.close()
            # DuckDB's message may quote file content: it is not passed on.
            raise DatasetUnavailable(f"dataset '{dataset}': its files could not be read as "
                                     f"{fmt}", touched=True) from None
        self.columns = tuple(names)

    def fetch(self, statement: str) -> list[Any]:
        with self._lock:  # cursor creation on the shared connection is serialised
            cursor = self._con.cursor()
        try:
            cursor.execute(statement)
            names = tuple(d[0] for d in cursor.description or ())
            return [names, *cursor.fetchall()]
        finally:
            cursor.close()

    def arrow_reader(self, statement: str, schema: Any) -> Any:
        """DuckDB's own Arrow stream of the statement's relation, batch by batch (the DB-API
        result's Arrow export would copy the rows once more)."""
        import pyarrow as pa

        with self._lock:
            cursor = self._con.cursor()

        def batches() -> Iterator[Any]:
            try:
                relation = cursor.sql(statement)
                stream = getattr(relation, "to_arrow_reader", None) or relation.fetch_arrow_reader
                for batch in stream(_BATCH_ROWS):
                    yield batch if batch.schema == schema else batch.cast(schema)
            finally:
                cursor.close()

        return pa.RecordBatchReader.from_batches(schema, batches())

    def close(self) -> None:
        self._con.close()
