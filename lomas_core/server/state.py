"""What a running server holds: the config, the plugin objects, the cache and the limits."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

from fastapi import Request
from pydantic import ValidationError

from lomas_core.adapter import Adapter
from lomas_core.cache import DatasetCache
from lomas_core.config import Config
from lomas_core.digest import short_digest
from lomas_core.engine import Engine
from lomas_core.errors import DatasetUnavailable, InvalidQuery, LomasError
from lomas_core.execution import ExecutionPool
from lomas_core.metadata import Metadata
from lomas_core.models import DatasetDescription
from lomas_core.plugins import LoadedPlugins
from lomas_core.server.limits import InflightLimiter
from lomas_core.store import BudgetStore

__all__ = ["ServerState", "get_state"]


def _description_key(description: DatasetDescription) -> str:
    blob = json.dumps([description.adapter, description.options], sort_keys=True, default=str)
    return f"{description.name}:{short_digest(blob)}"


@dataclass
class ServerState:
    """Everything request handlers need; one per app (per worker process)."""

    config: Config
    plugins: LoadedPlugins
    cache: DatasetCache
    inflight: InflightLimiter
    #: The worker processes running engine code; None with ``execution.workers: 0``.
    pool: ExecutionPool | None = None
    _metadata: dict[str, Metadata] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def store(self) -> BudgetStore:
        return self.plugins.store

    def engine(self, name: str) -> Engine:
        """The enabled engine ``name``; InvalidQuery listing the enabled engines otherwise."""
        engine = self.plugins.engines.get(name)
        if engine is None:
            enabled = ", ".join(sorted(self.plugins.engines)) or "none"
            raise InvalidQuery(f"engine '{name}' is not enabled on this server; enabled: {enabled}")
        return engine

    def adapter(self, description: DatasetDescription) -> Adapter:
        adapter = self.plugins.adapters.get(description.adapter)
        if adapter is None:
            raise DatasetUnavailable(
                f"dataset '{description.name}' uses adapter '{description.adapter}', "
                "which is not enabled on this server")
        return adapter

    def metadata(self, description: DatasetDescription) -> Metadata:
        """The dataset's public metadata: inline, or read through the adapter (memoized).

        Blocking (may read the metadata document); call from a worker thread.
        """
        if description.metadata is not None:
            return description.metadata
        key = _description_key(description)
        with self._lock:
            cached = self._metadata.get(key)
        if cached is not None:
            return cached
        adapter = self.adapter(description)
        try:
            raw = adapter.load_metadata(description.name, description.options)
        except LomasError:
            raise
        except Exception:  # noqa: BLE001 - adapter internals must not leak
            raise DatasetUnavailable(
                f"dataset '{description.name}': its metadata could not be read") from None
        if raw is None:
            raise DatasetUnavailable(f"dataset '{description.name}' has no metadata")
        try:
            metadata = Metadata.model_validate(raw)
        except ValidationError:
            raise DatasetUnavailable(f"dataset '{description.name}': its metadata is invalid") from None
        with self._lock:
            self._metadata[key] = metadata
        return metadata

    def forget(self, name: str) -> None:
        """Drop cached data and metadata of dataset ``name`` (after an admin change)."""
        with self._lock:
            for key in [k for k in self._metadata if k.split(":", 1)[0] == name]:
                del self._metadata[key]
        self.cache.invalidate(name)


def get_state(request: Request) -> ServerState:
    """The server state of the app handling ``request``."""
    state: ServerState = request.app.state.lomas
    return state
