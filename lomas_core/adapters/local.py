"""The built-in ``local`` adapter: CSV and Parquet files on the server's own disk, restricted to
the directories the admin allows.

Server config::

    adapters:
      local: {allowed_dirs: [/srv/data]}

Dataset description::

    name: penguins
    adapter: local
    options:
      path: /srv/data/penguins.csv      # relative paths resolve against the description's folder
      format: csv                        # optional; from the extension otherwise
      metadata_path: /srv/data/penguins.yaml   # optional: read metadata from beside the data

The version the dataset cache compares is the file's modification time and size. Built into the
core (entry point ``lomas.adapters: local``) so that the default config works with the core alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from lomas_core.adapter import Adapter, Loaded
from lomas_core.context import PluginContext
from lomas_core.errors import DatasetUnavailable
from lomas_core.io import detect_format, read_metadata, read_table_from_fs
from lomas_core.paths import AllowedDirs, resolve_relative_options
from lomas_core.validation import parse_options

__all__ = ["LocalAdapter", "LocalAdapterOptions", "LocalDatasetOptions"]


class LocalAdapterOptions(BaseModel):
    """Server-side options (config ``adapters.local``)."""

    model_config = ConfigDict(extra="forbid")

    allowed_dirs: list[str] = Field(default_factory=list)


class LocalDatasetOptions(BaseModel):
    """Per-dataset options (the description's ``options``)."""

    model_config = ConfigDict(extra="forbid")

    path: str
    format: str | None = None
    metadata_path: str | None = None


class LocalAdapter(Adapter):
    """Files on the server's disk, only under ``allowed_dirs`` (symlinks resolved first)."""

    Options: ClassVar[type[BaseModel]] = LocalAdapterOptions

    def __init__(self, options: LocalAdapterOptions, context: PluginContext) -> None:
        opts = options  # validated by the core against ``Options``
        self._allowed = AllowedDirs(context.config, opts.allowed_dirs, owner="the local adapter",
                                    section="local")
        import fsspec

        self._fs = fsspec.filesystem("file")

    @classmethod
    def resolve_options(cls, options: Mapping[str, Any], base_dir: Path) -> dict[str, Any]:
        """``path`` and ``metadata_path``, when relative, resolve against ``base_dir``."""
        return resolve_relative_options(options, base_dir, ("path", "metadata_path"))

    def _options(self, options: Mapping[str, Any]) -> LocalDatasetOptions:
        return parse_options(LocalDatasetOptions, options, "local adapter")

    def _allowed_path(self, raw: str) -> Path:
        return self._allowed.check(raw, raw)

    def check_options(self, options: Mapping[str, Any]) -> None:
        opts = self._options(options)
        self._allowed_path(opts.path)
        detect_format(opts.path, opts.format)
        if opts.metadata_path:
            self._allowed_path(opts.metadata_path)

    def version(self, options: Mapping[str, Any]) -> str | None:
        path = self._allowed_path(self._options(options).path)
        try:
            st = os.stat(path)
        except OSError:
            raise DatasetUnavailable("source file not found") from None
        return f"{st.st_mtime_ns}-{st.st_size}"

    def load(self, dataset: str, options: Mapping[str, Any]) -> Loaded:
        opts = self._options(options)
        path = self._allowed_path(opts.path)
        # Take the version before reading: a file replaced mid-read is then re-read next time.
        try:
            st = os.stat(path)
        except OSError:
            raise DatasetUnavailable(f"dataset '{dataset}': source file not found") from None
        table = read_table_from_fs(dataset, self._fs, str(path), opts.format)
        return Loaded(table, f"{st.st_mtime_ns}-{st.st_size}")

    def load_metadata(self, dataset: str, options: Mapping[str, Any]) -> dict[str, Any] | None:
        opts = self._options(options)
        if not opts.metadata_path:
            return None
        path = self._allowed_path(opts.metadata_path)
        try:
            with open(path, "rb") as handle:
                return read_metadata(dataset, handle)
        except FileNotFoundError:
            raise DatasetUnavailable(f"dataset '{dataset}': metadata file not found") from None
