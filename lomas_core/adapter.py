"""The data-adapter interface.

An adapter is a class named by an entry point in the group ``lomas.adapters``; the entry point's
name is its only name (the core sets :attr:`Adapter.name`; datasets name it in ``adapter:``). The
core validates the config's ``adapters.<name>`` section against :attr:`Adapter.Options` and builds
it with ``cls.create(options, context)``; the context reads only secrets scoped to this adapter.
Adapters connect to where data owners keep their data; they read it into Arrow memory through the
shared reader in :mod:`lomas_core.io`. The dataset cache in the core decides when to call them.

Rules (checked by :class:`lomas_core.testing.adapter_contract.AdapterContract`):

- ``check_options`` validates a dataset description when an admin adds it (raise InvalidRequest)
  and ``resolve_options`` turns relative paths into absolute ones against the config's folder;
  neither reads data.
- ``load`` raises DatasetUnavailable telling whether any content was read; messages name the
  dataset, never a secret or a value.
- A secret goes only where its config entry allows (:meth:`PluginContext.secret_ref`); addresses
  are checked with :mod:`lomas_core.network` before connecting.

Hooks an adapter may use: none; the core's cache calls it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lomas_core.plugin_base import PluginBase

if TYPE_CHECKING:
    from pathlib import Path

    import pyarrow as pa

__all__ = ["Adapter", "Loaded"]


@dataclass(frozen=True)
class Loaded:
    """A table read from the source and the version it was read at (ETag, mtime, version id)."""

    table: pa.Table
    version: str


class Adapter(PluginBase, ABC):
    """Reads a dataset (and optionally its metadata) from a source described by ``options``."""

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Validate a dataset description's options when an admin adds it; raise InvalidRequest."""

    @classmethod
    def resolve_options(cls, options: Mapping[str, Any], base_dir: Path) -> dict[str, Any]:
        """A dataset description's ``options`` with this adapter's relative file paths made
        absolute against ``base_dir`` (the folder of the YAML file that holds the description).
        Called on the class, before any adapter is built; the default changes nothing."""
        return dict(options)

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

