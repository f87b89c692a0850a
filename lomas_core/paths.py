"""Files on the server's disk that adapters and sources may read: only under ``allowed_dirs``.

Shared by the built-in ``local`` adapter and the file-reading push-down sources (``duckdb``,
``spark``): the allowed folders are resolved once (symlinks followed), every dataset path is
resolved the same way before it is compared, and a relative path option in a dataset
description resolves against the description's folder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from lomas_core.config import Config
from lomas_core.errors import DatasetUnavailable, InvalidRequest

__all__ = ["AllowedDirs", "FileDatasetOptions", "file_format", "files_version",
           "resolve_relative_options"]


class AllowedDirs:
    """The folders a plugin may read (config ``adapters.<section>.allowed_dirs``)."""

    def __init__(self, config: Config, dirs: Iterable[str], *, owner: str, section: str) -> None:
        """``owner`` names the plugin in refusals ("the duckdb source"), ``section`` its config
        section (``duckdb``)."""
        self._config = config
        self.owner = owner
        self.section = section
        self.dirs = [config.resolve_path(d).resolve() for d in dirs]

    def check(self, path: str | Path, raw: str) -> Path:
        """``path`` resolved (relative to the config's folder, symlinks followed).

        Raises:
            InvalidRequest: it is neither an allowed folder nor inside one (``raw``, what the
                description says, names it).
        """
        resolved = self._config.resolve_path(path).resolve()
        if not any(resolved == d or d in resolved.parents for d in self.dirs):
            raise InvalidRequest(f"path '{raw}' is outside the directories {self.owner} may read "
                                 f"(adapters.{self.section}.allowed_dirs)")
        return resolved


def resolve_relative_options(options: Mapping[str, Any], base_dir: Path, keys: Iterable[str], *,
                             pattern: bool = False) -> dict[str, Any]:
    """``options`` with each relative path under ``keys`` made absolute against ``base_dir``.

    With ``pattern`` the value may be a glob: a non-empty value is joined to the resolved
    ``base_dir`` as it stands (a glob cannot be resolved); otherwise the joined path is resolved.
    """
    resolved = dict(options)
    for key in keys:
        value = resolved.get(key)
        if not isinstance(value, str) or Path(value).expanduser().is_absolute():
            continue
        if pattern:
            if value:
                resolved[key] = str(base_dir.resolve() / value)
        else:
            resolved[key] = str((base_dir / value).resolve())
    return resolved


def files_version(files: Iterable[Path]) -> str:
    """The version of a dataset made of ``files`` (path, modification time and size of each).

    Raises:
        DatasetUnavailable: there is no file.
    """
    digest = hashlib.sha256()
    found = False
    for path in files:
        found = True
        st = path.stat()
        digest.update(f"{path}|{st.st_mtime_ns}|{st.st_size}\n".encode())
    if not found:
        raise DatasetUnavailable("source file not found")
    return digest.hexdigest()[:24]


class FileDatasetOptions(BaseModel):
    """A dataset description's options for sources that read files: a file, a folder of Parquet
    files (or, where the source allows it, a glob inside one folder), and its format."""

    model_config = ConfigDict(extra="forbid")

    path: str
    #: ``parquet`` or ``csv``; by default from the path (``.csv``, ``.csv.gz``, ``.txt``: csv).
    format: Literal["parquet", "csv"] | None = None

    def file_format(self) -> str:
        """The declared format, else the one the path's suffix implies."""
        return file_format(self.path, self.format)


def file_format(path: str, declared: str | None = None) -> str:
    """``declared``, else ``csv`` for ``.csv``, ``.csv.gz`` and ``.txt`` paths, else ``parquet``."""
    if declared:
        return declared
    return "csv" if path.lower().endswith((".csv", ".csv.gz", ".txt")) else "parquet"
