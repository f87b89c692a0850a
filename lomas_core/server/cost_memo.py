"""Costs the execution workers computed, remembered by their public inputs.

An engine's cost is, by the :class:`~lomas_core.engine.Engine` contract, a function of the query
and the dataset's public description only (name, metadata, dialect), under the engines' config,
which is fixed for a server's lifetime. Asking a worker again for a cost it already gave costs a
thread hop and a process round trip on every query (most of a repeated query's cost stage). The
server keeps each answer under a digest of exactly what the worker was sent (engine name, raw
query payload, dataset description as JSON): a repeated query is charged the same cost without
the round trip. Only successful costs are kept: a refusal, a timeout or a lost worker is asked
again. Nothing computed on data is kept here (costs never read data), and the charge, the run and
the archive are unchanged: the query still runs in a worker after its charge.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any

from lomas_core.budget import Budget

__all__ = ["CostMemo"]


class CostMemo:
    """A bounded, thread-safe map from a cost task's inputs to the cost its worker returned.

    Args:
        size: costs kept (least recently used first out); 0 keeps none.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._costs: OrderedDict[bytes, Budget] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(msg: dict[str, Any]) -> bytes | None:
        """The digest of a ``cost`` task's inputs; None when they are not plain JSON."""
        try:
            text = json.dumps([msg["engine"], msg["query"], msg["info"]], sort_keys=True,
                              separators=(",", ":"))
        except (TypeError, ValueError):
            return None
        return hashlib.blake2b(text.encode(), digest_size=32).digest()

    def get(self, key: bytes | None) -> Budget | None:
        if key is None:
            return None
        with self._lock:
            cost = self._costs.get(key)
            if cost is not None:
                self._costs.move_to_end(key)
            return cost

    def put(self, key: bytes | None, cost: Budget) -> None:
        if key is None or self.size <= 0:
            return
        with self._lock:
            self._costs[key] = cost
            self._costs.move_to_end(key)
            while len(self._costs) > self.size:
                self._costs.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._costs)
