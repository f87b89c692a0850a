"""The ``spark`` source: Parquet and CSV files answered by a Spark session (local or a cluster).

The process holds one Spark session (:mod:`lomas_source_spark.session`: ANSI mode off, UI off,
bounded driver memory); each dataset gets a child session with one temporary view, ``df``, that
applies the metadata's rules (:mod:`lomas_source_spark.view`). Statements run only after Spark's
parser shows them to be one query over ``df``; only their (aggregate) rows are collected.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lomas_core.api import (
    TABLE_NAME,
    AllowedDirs,
    DatasetUnavailable,
    FileDatasetOptions,
    InvalidRequest,
    Metadata,
    PluginContext,
    SqlSource,
    SqlTarget,
    files_version,
    note_read,
    parse_options,
    resolve_relative_options,
)
from lomas_source_spark.session import check_statement, spark_session
from lomas_source_spark.view import view_sql

__all__ = ["SparkSource", "SparkSourceOptions", "SparkTarget"]


class SparkSourceOptions(BaseModel):
    """Server-side options (config ``adapters.spark``)."""

    model_config = ConfigDict(extra="forbid")

    #: Folders datasets may live in (symlinks resolved first); on a cluster, a folder every
    #: executor sees at the same path (a shared file system).
    allowed_dirs: list[str] = Field(default_factory=list)
    #: A cluster's master URL (``spark://host:7077``, ``yarn``, ``k8s://...``); default
    #: ``local[threads]``: Spark inside the lomas process.
    master: str | None = Field(default=None, max_length=500)
    #: Worker threads of the local master.
    threads: int = Field(default=2, ge=1, le=256)
    #: ``spark.driver.memory`` (the JVM started by the lomas process).
    driver_memory: str = Field(default="1g", pattern=r"^[0-9]+[kmgt]?$")
    #: ``spark.sql.shuffle.partitions`` (aggregates are small: few partitions).
    shuffle_partitions: int = Field(default=4, ge=1, le=10000)


SparkDatasetOptions = FileDatasetOptions


class SparkSource(SqlSource):
    """Files under ``allowed_dirs``, answered by Spark."""

    dialect = "spark"

    Options = SparkSourceOptions

    def __init__(self, options: SparkSourceOptions, context: PluginContext) -> None:
        super().__init__(options, context)
        self.options: SparkSourceOptions = options
        self._allowed = AllowedDirs(context.config, self.options.allowed_dirs,
                                    owner="the spark source", section="spark")

    @classmethod
    def resolve_options(cls, options: Mapping[str, Any], base_dir: Path) -> dict[str, Any]:
        """A relative ``path`` resolves against ``base_dir``."""
        return resolve_relative_options(options, base_dir, ("path",), pattern=True)

    def _options(self, options: Mapping[str, Any]) -> SparkDatasetOptions:
        return parse_options(SparkDatasetOptions, options, "spark source")

    def _resolve(self, raw: str) -> Path:
        if any(ch in raw for ch in "*?[{"):
            raise InvalidRequest("spark source paths are a file or a folder, not a pattern")
        return self._allowed.check(Path(raw), raw)

    @staticmethod
    def _files(path: Path, fmt: str) -> list[Path]:
        if path.is_dir():
            suffix = ".csv" if fmt == "csv" else ".parquet"
            return sorted(p for p in path.rglob(f"*{suffix}") if p.is_file())
        return [path] if path.is_file() else []

    def check_options(self, options: Mapping[str, Any]) -> None:
        self._resolve(self._options(options).path)

    def version(self, options: Mapping[str, Any]) -> str | None:
        opts = self._options(options)
        files = self._files(self._resolve(opts.path), opts.file_format())
        return files_version(files)

    def open(self, dataset: str, options: Mapping[str, Any], metadata: Metadata) -> SqlTarget:
        opts = self._options(options)
        path = self._resolve(opts.path)
        fmt = opts.file_format()
        if not self._files(path, fmt):
            raise DatasetUnavailable(f"dataset '{dataset}': source file not found")
        try:
            session = spark_session(self.options.master or f"local[{self.options.threads}]",
                                    self.options.driver_memory, self.options.shuffle_partitions)
        except Exception:  # noqa: BLE001 - no JVM, no cluster: PySpark raises many kinds
            raise DatasetUnavailable("the Spark session could not be started") from None
        return SparkTarget(dataset, session, path, fmt, metadata)


class SparkTarget(SqlTarget):
    """One dataset's child Spark session with the temporary view ``df``."""

    dialect = "spark"

    def __init__(self, dataset: str, session: Any, path: Path, fmt: str,
                 metadata: Metadata) -> None:
        self.dataset = dataset
        self.metadata = metadata
        self._session = session.newSession()
        self._session.conf.set("spark.sql.ansi.enabled", "false")
        source = f"lomas_source_{secrets.token_hex(8)}"
        try:
            note_read()  # the schema (column names) comes from the files
            reader = self._session.read
            if fmt == "csv":
                frame = reader.option("header", "true").csv(str(path))
            else:
                frame = reader.option("recursiveFileLookup", "true").parquet(str(path))
            frame.createOrReplaceTempView(source)
            select, names = view_sql(source, metadata, list(frame.columns))
            self._session.sql(select).createOrReplaceTempView(TABLE_NAME)
            self._session.catalog.dropTempView(source)
        except ValueError as exc:
            raise DatasetUnavailable(f"dataset '{dataset}' does not match its metadata: {exc}",
                                     touched=True) from None
        except Exception:  # noqa: BLE001 - Spark's analysis and py4j errors alike
            # Spark's message may quote file content: it is not passed on.
            raise DatasetUnavailable(f"dataset '{dataset}': its files could not be read as "
                                     f"{fmt}", touched=True) from None
        self.columns = tuple(names)

    def fetch(self, statement: str) -> list[Any]:
        check_statement(self._session, statement)
        frame = self._session.sql(statement)
        names = tuple(frame.columns)
        return [names, *(tuple(row) for row in frame.collect())]

    def close(self) -> None:
        self._session.catalog.dropTempView(TABLE_NAME)
