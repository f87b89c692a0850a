"""The dataset cache: loaded datasets stay in memory between queries.

- Bounded by ``cache.max_bytes``; least recently used datasets leave first. A dataset larger than
  the whole cap is served but not kept.
- Revalidated against the source's version (ETag, mtime, version id) at most every
  ``cache.revalidate_seconds``; a changed source is reloaded.
- Concurrent first requests for one dataset load it once (one lock per dataset).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from lomas_core.adapter import Adapter
from lomas_core.data import DataHandle
from lomas_core.io import check_schema
from lomas_core.metadata import Metadata
from lomas_core.models import DatasetDescription

__all__ = ["DatasetCache"]

log = logging.getLogger("lomas.cache")


@dataclass
class _Entry:
    handle: DataHandle
    checked_at: float
    nbytes: int


def _key(description: DatasetDescription) -> str:
    # A changed description (new path, new adapter) must never serve the old data.
    blob = json.dumps([description.adapter, description.options], sort_keys=True, default=str)
    return f"{description.name}:{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


class DatasetCache:
    """Thread-safe LRU cache of :class:`DataHandle` objects keyed by dataset description."""

    def __init__(self, max_bytes: int, revalidate_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self.revalidate_seconds = revalidate_seconds
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        #: Counters for tests and metrics.
        self.loads = 0
        self.hits = 0

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return sum(e.nbytes for e in self._entries.values())

    def cached_names(self) -> list[str]:
        with self._lock:
            return [e.handle.dataset for e in self._entries.values()]

    def _fresh(self, key: str) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def get(self, description: DatasetDescription, adapter: Adapter, metadata: Metadata) -> DataHandle:
        """The dataset's current data, loading or reloading it through ``adapter`` when needed.

        Raises:
            DatasetUnavailable: from the adapter or the schema check.
        """
        key = _key(description)
        entry = self._fresh(key)
        if entry is not None and self._clock() - entry.checked_at < self.revalidate_seconds:
            self.hits += 1
            return entry.handle
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            entry = self._fresh(key)
            now = self._clock()
            if entry is not None and now - entry.checked_at < self.revalidate_seconds:
                self.hits += 1
                return entry.handle  # another thread just loaded or revalidated it
            if entry is not None:
                version = adapter.version(description.options)
                if version is not None and version == entry.handle.version:
                    entry.checked_at = now
                    self.hits += 1
                    return entry.handle
            return self._load(key, description, adapter, metadata)

    def _load(self, key: str, description: DatasetDescription, adapter: Adapter,
              metadata: Metadata) -> DataHandle:
        loaded = adapter.load(description.name, description.options)
        table = check_schema(description.name, loaded.table, metadata)
        handle = DataHandle(description.name, loaded.version, table)
        self.loads += 1
        nbytes = handle.nbytes
        with self._lock:
            old = self._entries.pop(key, None)
            if nbytes <= self.max_bytes:
                self._entries[key] = _Entry(handle, self._clock(), nbytes)
                self._evict()
            else:
                log.warning("dataset '%s' (%d bytes) is larger than the cache cap; not kept",
                            description.name, nbytes)
        if old is not None:
            old.handle.close()
        return handle

    def _evict(self) -> None:
        total = sum(e.nbytes for e in self._entries.values())
        while total > self.max_bytes and len(self._entries) > 1:
            _, entry = self._entries.popitem(last=False)
            total -= entry.nbytes
            log.info("evicting dataset '%s' from the cache", entry.handle.dataset)

    def note_growth(self, handle: DataHandle) -> None:
        """Re-measure a handle after engines derived forms from it, and evict if over the cap."""
        with self._lock:
            for entry in self._entries.values():
                if entry.handle is handle:
                    entry.nbytes = handle.nbytes
            self._evict()

    def invalidate(self, name: str) -> None:
        """Drop every cached version of dataset ``name`` (after an admin changes it)."""
        with self._lock:
            for key in [k for k, e in self._entries.items() if e.handle.dataset == name]:
                self._entries.pop(key).handle.close()

    def clear(self) -> None:
        with self._lock:
            for entry in self._entries.values():
                entry.handle.close()
            self._entries.clear()
