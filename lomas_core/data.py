"""Loaded datasets as engines see them.

A :class:`DataHandle` wraps one version of a dataset held in Arrow memory. Engines ask it for the
form they need; each form is built once per version and shared by every later query (the dataset
cache keeps the handle), so no query pays a per-query copy. Engines must treat every form as
read-only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["DataHandle"]

T = TypeVar("T")


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
        self._memo: dict[str, Any] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @property
    def nbytes(self) -> int:
        """Memory held by the Arrow table plus derived forms (approximate)."""
        extra = 0
        frame = self._memo.get("pandas")
        if frame is not None:
            extra += int(frame.memory_usage(deep=False).sum())
        return int(self.table.nbytes) + extra

    def memo(self, key: str, factory: Callable[[], T]) -> T:
        """Build ``factory()`` once per handle and key, even under concurrent callers.

        Engines use it for per-version state: a SQL engine with the data loaded, a polars frame.
        """
        if key in self._memo:
            return self._memo[key]  # type: ignore[no-any-return]
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._memo:
                self._memo[key] = factory()
        return self._memo[key]  # type: ignore[no-any-return]

    def pandas(self) -> pd.DataFrame:
        """The data as a pandas DataFrame, converted once."""
        return self.memo("pandas", self.table.to_pandas)

    def close(self) -> None:
        """Drop derived forms; engines' memo values with a ``close`` method are closed."""
        for value in list(self._memo.values()):
            closer = getattr(value, "close", None)
            if callable(closer):
                try:
                    closer()
                except Exception:  # noqa: BLE001 - best effort on eviction
                    pass
        self._memo.clear()
