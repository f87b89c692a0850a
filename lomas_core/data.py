"""Loaded datasets as engines see them.

A :class:`DataHandle` wraps one version of a dataset held in Arrow memory. Engines ask it for the
form they need; each form is built once per version and shared by every later query (the dataset
cache keeps the handle), so no query pays a per-query copy. Engines must treat every form as
read-only.

Every derived form is a :class:`Memo` entry that carries its own size and ``close``: the handle's
:attr:`DataHandle.nbytes` counts them (so the cache's cap covers DuckDB databases and polars copies,
not only the Arrow table) and :meth:`DataHandle.close` releases them when the version leaves the
cache.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["DataHandle", "Memo", "estimate_nbytes"]

T = TypeVar("T")


def estimate_nbytes(value: Any) -> int:
    """Memory held by a derived form, when it can tell: an ``nbytes`` attribute (Arrow, numpy, a
    DuckDB copy), polars' ``estimated_size()`` or pandas' ``memory_usage()``; else 0."""
    size = getattr(value, "nbytes", None)
    if isinstance(size, int):
        return size
    estimated = getattr(value, "estimated_size", None)
    if callable(estimated):
        return int(estimated())
    usage = getattr(value, "memory_usage", None)
    if callable(usage):
        try:
            return int(usage(deep=False).sum())
        except (TypeError, AttributeError):
            return 0
    return 0


@dataclass
class Memo(Generic[T]):
    """One derived form of a dataset version, its size in bytes and how to release it.

    A memo factory may return a ``Memo`` to state these; a plain value is wrapped with
    :func:`estimate_nbytes` and its own ``close`` method, if any.
    """

    value: T
    nbytes: int = 0
    close: Callable[[], None] | None = None

    @classmethod
    def of(cls, value: Any) -> Memo[Any]:
        if isinstance(value, Memo):
            return value
        closer = getattr(value, "close", None)
        return cls(value, estimate_nbytes(value), closer if callable(closer) else None)


class DataHandle:
    """One version of one dataset (or a dummy dataset) in memory.

    Attributes:
        dataset: the dataset name.
        version: identifies the source version (ETag, mtime, ...) or the dummy's (rows, seed).
        table: the data as a ``pyarrow.Table`` (read-only).
        dummy: True for a dummy dataset generated from metadata.
    """

    def __init__(self, dataset: str, version: str, table: pa.Table, *, dummy: bool = False) -> None:
        self.dataset = dataset
        self.version = version
        self.table = table
        self.dummy = dummy
        #: The Arrow IPC file holding ``table`` when workers map it (None: in memory only).
        self.path: str | None = None
        self._memo: dict[str, Memo[Any]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        # The forms are released when the last query and the cache let go of this version.
        weakref.finalize(self, _close_all, self._memo)

    @property
    def nbytes(self) -> int:
        """Memory held by the Arrow table plus every derived form (as the forms report it)."""
        return int(self.table.nbytes) + sum(entry.nbytes for entry in list(self._memo.values()))

    def memo(self, key: str, factory: Callable[[], T | Memo[T]]) -> T:
        """Build ``factory()`` once per handle and key, even under concurrent callers.

        Engines use it for per-version state: a SQL engine with the data loaded, a polars frame.
        Return a :class:`Memo` from ``factory`` to give the form's size or its release.
        """
        entry = self._memo.get(key)
        if entry is not None:
            return entry.value  # type: ignore[no-any-return]
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._memo:
                self._memo[key] = Memo.of(factory())
        return self._memo[key].value  # type: ignore[no-any-return]

    def pandas(self) -> pd.DataFrame:
        """The data as a pandas DataFrame, converted once (counted in :attr:`nbytes`)."""
        return self.memo("pandas", self.table.to_pandas)

    def close(self) -> None:
        """Release every derived form now (each entry's ``close``); best effort."""
        _close_all(self._memo)


def _close_all(memo: dict[str, Memo[Any]]) -> None:
    entries = list(memo.values())
    memo.clear()
    for entry in entries:
        if entry.close is not None:
            try:
                entry.close()
            except Exception:  # noqa: BLE001 - best effort on eviction
                pass
