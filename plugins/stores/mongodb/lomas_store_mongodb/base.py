"""Shared state of the mongodb store: collections, unit scale and the error guard."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pymongo.errors import DuplicateKeyError, PyMongoError

from lomas_core.api import (
    LastUsed,
    StoreUnavailable,
)
from lomas_store_mongodb.units import Scale

if TYPE_CHECKING:
    from pymongo.collection import Collection
    from pymongo.database import Database

__all__ = ["MongoBase", "log"]

log = logging.getLogger("lomas.store.mongodb")


class MongoBase:
    """Collections and helpers every part of :class:`~lomas_store_mongodb.store.MongoStore` uses."""

    db: Database[dict[str, Any]]
    scale: Scale
    hosts: str
    recovery_grace_seconds: float
    #: Records tokens' last use off the request path (see :class:`lomas_core.tokens.LastUsed`).
    last_used: LastUsed
    #: See :attr:`lomas_core.store.BudgetStore.fault_hook` (crash-point tests).
    fault_hook: Callable[[str], None] | None = None

    def _ensure_lease(self) -> str | None:
        """The owner id to stamp on a charge (see ``lease.py``); None without owner tracking."""
        return None

    def _step(self, name: str) -> None:
        hook = self.fault_hook
        if hook is not None:
            hook(name)

    @property
    def users(self) -> Collection[dict[str, Any]]:
        return self.db["users"]

    @property
    def tokens(self) -> Collection[dict[str, Any]]:
        return self.db["tokens"]

    @property
    def datasets(self) -> Collection[dict[str, Any]]:
        return self.db["datasets"]

    @property
    def grants(self) -> Collection[dict[str, Any]]:
        return self.db["grants"]

    @property
    def archive(self) -> Collection[dict[str, Any]]:
        return self.db["archive"]

    @property
    def meta(self) -> Collection[dict[str, Any]]:
        return self.db["meta"]

    @contextmanager
    def guard(self, action: str, message: str = "The budget store is unavailable; retry later.",
              ) -> Iterator[None]:
        """Turn driver failures into StoreUnavailable (503) without leaking driver text.

        Duplicate-key errors pass through: callers translate them into Conflict and friends.
        """
        try:
            yield
        except DuplicateKeyError:
            raise
        except PyMongoError as exc:
            log.warning("mongodb %s failed on %s: %s: %s", action, self.hosts, type(exc).__name__, exc)
            raise StoreUnavailable(message) from None
