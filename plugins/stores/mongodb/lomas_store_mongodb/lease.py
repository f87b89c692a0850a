"""Owner leases: which server process answers a pending charge, and whether it still lives.

Each store object registers an owner document in the ``owners`` collection and stamps its id on
every charge (``owner`` in the grant's pending entry and in the archive record). While it has
charged anything, a :class:`~lomas_core.stores.lease.LeaseKeeper` thread renews the lease every
``lease_seconds / 3`` by incrementing ``beat``. Another process treats an owner as **dead** when

* it is known dead: same machine and pid namespace, and its pid is gone or reused;
* it was buried (``dead: true``) by a process that found it dead; or
* its ``beat`` has not moved for longer than its ``lease_seconds``, measured on the observer's own
  monotonic clock (clocks of different machines never need to agree).

A dead owner is buried first (conditional on the beat the observer saw, so an owner that beats
meanwhile is not), then its pending records are resolved and its document deleted. An owner that
finds itself buried registers again under a new id; what it charged under the old one is final.
An owner that closes cleanly deletes its document: its leftovers, like those of older versions
(no ``owner``), fall to ``recovery_grace_seconds``.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from lomas_core.api import (
    LeaseKeeper,
    process_gone,
    this_process,
    utcnow,
)
from lomas_store_mongodb.base import MongoBase, log
from lomas_store_mongodb.codec import format_time

if TYPE_CHECKING:
    from pymongo.collection import Collection

__all__ = ["LeaseMixin"]


class LeaseMixin(MongoBase):
    """Registers this process as an owner and tells live owners from dead ones."""

    lease_seconds: float
    owner_id: str | None = None
    _keeper: LeaseKeeper | None = None

    @property
    def owners(self) -> Collection[dict[str, Any]]:
        return self.db["owners"]

    def heartbeat(self) -> int:
        """Renew the lease and resolve dead owners' records (see ``recovery.py``)."""
        raise NotImplementedError

    def _register_owner(self) -> None:
        """Insert a fresh owner document for this store object (at start-up, or after a burial)."""
        owner = uuid.uuid4().hex
        self.owners.insert_one({"_id": owner, **this_process().as_doc(), "beat": 0, "dead": False,
                                "lease_seconds": self.lease_seconds,
                                "registered_at": format_time(utcnow()),
                                "renewed_at": format_time(utcnow())})
        self.owner_id = owner
        self._renewed = time.monotonic()
        if not hasattr(self, "_seen"):
            #: owner id -> (beat, monotonic time this process first saw that beat)
            self._seen: dict[str, tuple[int, float]] = {}
            self._lease_lock = threading.Lock()

    def _renew(self) -> None:
        """One heartbeat; registers anew when another process buried this owner."""
        with self._lease_lock:
            done = self.owners.update_one(
                # Equality, not $ne: some wire-compatible servers skip missing fields on $ne.
                {"_id": self.owner_id, "dead": False},
                {"$inc": {"beat": 1}, "$set": {"renewed_at": format_time(utcnow())}})
            if done.matched_count == 0:
                log.error("mongodb store: owner %s was declared dead by another server (no "
                          "heartbeat for %ss); its pending queries were archived as failed. "
                          "Registering again.", self.owner_id, self.lease_seconds)
                self._register_owner()
            else:
                self._renewed = time.monotonic()

    def _ensure_lease(self) -> str:
        """Before a charge: the keeper runs and the lease has at least half its time left.

        Returns the owner id to stamp on the charge.
        """
        if self._keeper is None:
            with self._lease_lock:
                if self._keeper is None:
                    self._keeper = LeaseKeeper(self.heartbeat, self.lease_seconds / 3,
                                               "lomas-mongodb-lease").start()
        if time.monotonic() - self._renewed > self.lease_seconds / 2:
            self._renew()
        assert self.owner_id is not None
        return self.owner_id

    def _dead_owners(self, observe: bool) -> tuple[set[str], set[str]]:
        """``(dead, known)``: owners found dead now, and every owner with a document.

        With ``observe`` (the heartbeat), beats are recorded and a beat unchanged for longer than
        the owner's lease counts as dead; otherwise only what was observed before counts.
        """
        dead: set[str] = set()
        known: set[str] = set()
        now = time.monotonic()
        for doc in self.owners.find({}):
            owner = doc["_id"]
            known.add(owner)
            if owner == self.owner_id:
                continue
            beat = int(doc.get("beat") or 0)
            lease = float(doc.get("lease_seconds") or self.lease_seconds)
            seen = self._seen.get(owner)
            if observe and (seen is None or seen[0] != beat):
                seen = (beat, now)
                self._seen[owner] = seen
            if doc.get("dead"):
                dead.add(owner)
            elif process_gone(doc.get("machine"), doc.get("pid"), doc.get("started")):
                self._bury(owner, None)
                dead.add(owner)
            elif seen is not None and seen[0] == beat and now - seen[1] > lease:
                if self._bury(owner, beat):
                    dead.add(owner)
        for owner in set(self._seen) - known:
            del self._seen[owner]
        return dead, known

    def _bury(self, owner: str, beat: int | None) -> bool:
        """Mark ``owner`` dead (only if it has not beaten since ``beat``); True when it is."""
        filt: dict[str, Any] = {"_id": owner}
        if beat is not None:
            filt["beat"] = beat
        done = self.owners.update_one(filt, {"$set": {"dead": True}})
        if done.matched_count:
            log.warning("mongodb store: owner %s is dead; resolving its pending queries", owner)
        return bool(done.matched_count)

    def _forget_dead(self, dead: set[str]) -> None:
        """Delete buried owners whose records were all resolved."""
        for owner in dead:
            self.owners.delete_one({"_id": owner, "dead": True})
            self._seen.pop(owner, None)

    def _close_lease(self) -> None:
        """A clean close: stop beating and withdraw the owner document."""
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.stop()
        if self.owner_id is not None:
            try:
                self.owners.delete_one({"_id": self.owner_id})
            except Exception:  # noqa: BLE001 - best effort at shutdown
                log.debug("mongodb store: could not withdraw owner %s", self.owner_id)
