"""The data-adapter interface.

An adapter plugin returns an :class:`Adapter` from ``lomas_make_adapter``. Adapters connect to where
data owners keep their data; they read it into Arrow memory through the shared reader in
:mod:`lomas_core.io`. The dataset cache in the core decides when to call them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Adapter", "Loaded"]


@dataclass(frozen=True)
class Loaded:
    """A table read from the source and the version it was read at (ETag, mtime, version id)."""

    table: pa.Table
    version: str


class Adapter(ABC):
    """Reads a dataset (and optionally its metadata) from a source described by ``options``."""

    #: Short name used in the config and in dataset descriptions (``local``, ``http``, ``s3``).
    name: ClassVar[str] = ""

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Validate a dataset description's options when an admin adds it; raise InvalidRequest."""

    @abstractmethod
    def version(self, options: Mapping[str, Any]) -> str | None:
        """The source's current version without reading its content (stat, HEAD, ETag).

        Returns None when the source cannot tell; the cache then keeps what it has until its
        revalidation interval ends and reloads. Raises DatasetUnavailable(touched=False).
        """

    @abstractmethod
    def load(self, dataset: str, options: Mapping[str, Any]) -> Loaded:
        """Read the whole table. Raises DatasetUnavailable with ``touched`` telling whether any
        content had been read when it failed. Messages name the dataset, never secrets or content."""

    def load_metadata(self, dataset: str, options: Mapping[str, Any]) -> dict[str, Any] | None:
        """Read the metadata document stored beside the data when ``options`` say so, else None."""
        return None

    def close(self) -> None:
        """Release connections at shutdown."""
