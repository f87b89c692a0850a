"""The dataset cache: loaded datasets stay in memory between queries.

- Bounded by ``cache.max_bytes``; least recently used datasets leave first. A dataset larger than
  the whole cap is served but not kept.
- Revalidated against the source's version (ETag, mtime, version id) at most every
  ``cache.revalidate_seconds``; a changed source is reloaded.
- Concurrent first requests for one dataset load it once (one lock per dataset); different
  datasets load in parallel.
- Evicted or replaced handles are only dropped, never closed: a query that already holds one keeps
  working on it, and its memory goes when the last query lets go of it.
- With ``data_dir`` (the execution pool is on) a loaded version is written once as an Arrow IPC
  file there and the server keeps only a memory map of it (a push-down source's table is streamed
  into that file batch by batch, never held whole); workers map the same file, so the
  dataset is in memory once per machine (the page cache), whatever the number of workers. Files of
  evicted or replaced versions are removed; workers drop their memos of a version whose file is gone.
- When a revalidation finds the source unreachable the error is raised rather than serving the old
  copy: a data owner who withdraws a file withdraws the dataset.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lomas_core.adapter import Adapter
from lomas_core.data import DataHandle
from lomas_core.digest import short_digest
from lomas_core.errors import DatasetUnavailable
from lomas_core.metadata import Metadata
from lomas_core.models import DatasetDescription
from lomas_core.prepare import prepare_table
from lomas_core.reads import note_read

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["DatasetCache"]

log = logging.getLogger("lomas.cache")


@dataclass
class _Entry:
    handle: DataHandle
    checked_at: float
    nbytes: int


def _key(description: DatasetDescription, metadata: Metadata) -> str:
    # A changed description (new path, new adapter) or metadata (columns kept, their types) must
    # never serve a table prepared for the old one.
    blob = json.dumps([description.adapter, description.options, metadata.model_dump(mode="json")],
                      sort_keys=True, default=str)
    return f"{description.name}:{short_digest(blob)}"


def _same_data(a: pa.Table, b: pa.Table) -> bool:
    """Whether two Arrow tables hold the very same buffers (``a`` derived from ``b`` without a
    copy, as the core's preparation leaves a table that already honours its metadata)."""
    def layout(table: pa.Table) -> list[Any]:
        return [[[None if buf is None else buf.address for buf in chunk.buffers()]
                 for chunk in column.chunks] for column in table.columns]

    return bool(a.schema == b.schema) and layout(a) == layout(b)


class DatasetCache:
    """Thread-safe LRU cache of :class:`DataHandle` objects keyed by dataset description."""

    def __init__(self, max_bytes: int, revalidate_seconds: float,
                 clock: Callable[[], float] = time.monotonic, *,
                 data_dir: Path | None = None, max_load_rows: int | None = None,
                 max_load_bytes: int | None = None) -> None:
        self.max_bytes = max_bytes
        #: Limits on tables read into memory from push-down sources (``limits.max_load_*``).
        self.max_load_rows = max_load_rows
        self.max_load_bytes = max_load_bytes
        self.data_dir = data_dir
        if data_dir is not None:
            data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.revalidate_seconds = revalidate_seconds
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        #: IPC files of versions served but not kept (over the cap); removed at the next load.
        self._loose: list[str] = []
        #: Counters for tests and metrics (updated under the cache lock).
        self.loads = 0
        self.hits = 0
        self.evictions = 0

    def _hit(self, handle: DataHandle) -> DataHandle:
        with self._lock:
            self.hits += 1
        return handle

    @property
    def total_bytes(self) -> int:
        """Bytes held by the cached handles (as last measured)."""
        with self._lock:
            return sum(e.nbytes for e in self._entries.values())

    def cached_names(self) -> list[str]:
        """Names of the cached datasets, least recently used first."""
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
        key = _key(description, metadata)
        entry = self._fresh(key)
        if entry is not None and self._clock() - entry.checked_at < self.revalidate_seconds:
            return self._hit(entry.handle)
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            entry = self._fresh(key)
            now = self._clock()
            if entry is not None and now - entry.checked_at < self.revalidate_seconds:
                return self._hit(entry.handle)  # another thread just loaded or revalidated it
            if entry is not None:
                version = self._version(description, adapter)
                if version is not None and version == entry.handle.version:
                    entry.checked_at = self._clock()
                    return self._hit(entry.handle)
            return self._load(key, description, adapter, metadata)

    @staticmethod
    def _version(description: DatasetDescription, adapter: Adapter) -> str | None:
        try:
            return adapter.version(description.options)
        except DatasetUnavailable as exc:
            # version() does not know the dataset's name; researchers need it in the message.
            if f"'{description.name}'" in exc.message:
                raise
            reason = exc.message.removeprefix("dataset '?': ")
            raise DatasetUnavailable(f"dataset '{description.name}': {reason}",
                                     touched=False, **exc.details) from None

    def _load(self, key: str, description: DatasetDescription, adapter: Adapter,
              metadata: Metadata) -> DataHandle:
        from lomas_core.source import SqlSource

        streamed: str | None = None
        if isinstance(adapter, SqlSource):  # an engine that cannot push down: stream it in
            if self.data_dir is not None:  # straight into an IPC file: one batch in memory
                fd, streamed = tempfile.mkstemp(dir=self.data_dir, suffix=".tmp")
                os.close(fd)
            try:
                loaded = adapter.load_table(description.name, description.options, metadata,
                                            self.max_load_rows, self.max_load_bytes,
                                            sink=streamed)
            except BaseException:
                if streamed is not None:
                    Path(streamed).unlink(missing_ok=True)
                raise
        else:
            loaded = adapter.load(description.name, description.options)
        note_read()  # a table came back: whatever fails from here on has seen its content
        try:
            table = prepare_table(description.name, loaded.table, metadata)
            handle = DataHandle(description.name, loaded.version, table)
            if self.data_dir is not None:
                # The source applied the rules itself: the streamed file is the prepared table.
                same = streamed is not None and _same_data(table, loaded.table)
                self._materialise(key, handle, streamed if same else None)
        finally:
            if streamed is not None:
                Path(streamed).unlink(missing_ok=True)
        nbytes = handle.nbytes
        with self._lock:
            self.loads += 1
            # Queries on them have had their files (ensure_file rewrites one for a late query).
            for path in self._loose:
                if path != handle.path:
                    Path(path).unlink(missing_ok=True)
            self._loose.clear()
            # Other versions of this dataset (an older description or metadata) are dead weight.
            for stale in [k for k, e in self._entries.items()
                          if e.handle.dataset == description.name and k != key]:
                self._drop(self._entries.pop(stale))
            old = self._entries.pop(key, None)
            if old is not None and old.handle.path != handle.path:
                self._drop(old)
            if nbytes <= self.max_bytes:
                self._entries[key] = _Entry(handle, self._clock(), nbytes)
                self._evict()
            else:
                log.warning("dataset '%s' (%d bytes) is larger than the cache cap; not kept",
                            description.name, nbytes)
                if handle.path is not None:
                    self._loose.append(handle.path)
        return handle

    def _materialise(self, key: str, handle: DataHandle, written: str | None = None) -> None:
        """Write the handle's table as an Arrow IPC file (once per version) and map it back.
        ``written``: an IPC file already holding exactly that table, moved into place."""
        import pyarrow as pa

        assert self.data_dir is not None
        name = short_digest(f"{key}|{handle.version}", 32)
        path = self.data_dir / f"{name}.arrow"
        if written is not None:
            os.replace(written, path)  # atomic, as _write
        elif not path.exists():
            self._write(path, handle.table)
        handle.path = str(path)
        handle.table = pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()

    @staticmethod
    def _write(path: Path, table: object) -> None:
        import pyarrow as pa

        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        try:
            with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:  # type: ignore[attr-defined]
                writer.write_table(table)
            os.replace(tmp, path)  # atomic: another HTTP process may map the same version
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def ensure_file(self, handle: DataHandle) -> str:
        """The handle's IPC file, rewritten from the mapped table if another process removed it."""
        assert handle.path is not None
        path = Path(handle.path)
        if not path.exists():
            self._write(path, handle.table)
        return handle.path

    def _drop(self, entry: _Entry) -> None:
        # Unlinking is safe for maps already open (server and workers): the pages go with the
        # last map. Workers notice the missing file and drop their memos of that version.
        if entry.handle.path is not None:
            Path(entry.handle.path).unlink(missing_ok=True)

    def _evict(self) -> None:
        # Called with self._lock held. The newest entry is last, so it is the one kept when a
        # single handle alone is over the cap (it grew after engines derived forms from it).
        total = sum(e.nbytes for e in self._entries.values())
        while total > self.max_bytes and len(self._entries) > 1:
            _, entry = self._entries.popitem(last=False)
            self._drop(entry)
            total -= entry.nbytes
            self.evictions += 1
            log.info("evicting dataset '%s' from the cache", entry.handle.dataset)

    def note_growth(self, handle: DataHandle, nbytes: int | None = None) -> None:
        """Re-measure a handle after engines derived forms from it, and evict if over the cap.

        ``nbytes``: the size a worker reported for its copy (table plus its memos); with several
        workers each may hold memos, so the largest report is kept as an estimate per worker.
        """
        with self._lock:
            for entry in self._entries.values():
                if entry.handle is handle:
                    entry.nbytes = max(entry.nbytes, nbytes or 0, handle.nbytes)
            self._evict()

    def invalidate(self, name: str) -> None:
        """Drop every cached version of dataset ``name`` (after an admin changes it)."""
        with self._lock:
            for key in [k for k, e in self._entries.items() if e.handle.dataset == name]:
                self._drop(self._entries.pop(key))
            for key in [k for k in self._key_locks if k.startswith(f"{name}:")]:
                # Dropping a lock another thread holds is harmless: it keeps its reference.
                del self._key_locks[key]

    def clear(self) -> None:
        """Drop every cached dataset."""
        with self._lock:
            for entry in self._entries.values():
                self._drop(entry)
            self._entries.clear()
            for path in self._loose:
                Path(path).unlink(missing_ok=True)
            self._loose.clear()
