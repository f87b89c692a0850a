"""The admin audit log in MongoDB, written so that it holds an entry if and only if its change
happened, without multi-document transactions (a standalone MongoDB has none).

1. The entry is inserted **pending**, with a check: a filter on the changed collection that
   matches (or, for removals, no longer matches) once the change is made. Updates also push the
   entry's id onto the changed document (``_evts``, the last few ids) in the same update.
2. The change is made.
3. The entry is confirmed (``pending`` removed). A refused change (NotFound, Conflict) drops it;
   a driver error leaves it pending (the change may have landed).

A process dying between the steps leaves a pending entry, never listed. :meth:`reconcile_admin_log`
(at start-up, for entries older than the recovery grace) runs its check: confirmed when the change
is there, dropped when not. Removals, which take several writes, are finished first (the entry
recorded the intent), so a half-done removal is never left without its entry. A confirmation that
finds its entry dropped writes it again, so an entry is never lost once its change is made.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError, PyMongoError

from lomas_core.api import (
    MAX_PAGE,
    AdminEvent,
    LomasError,
    encode_cursor,
    format_time,
    parse_time,
    utcnow,
)
from lomas_store_mongodb.base import MongoBase, log
from lomas_store_mongodb.codec import after_cursor, dump_json, load_json

__all__ = ["AuditMixin", "mark"]

#: How many recent entry ids a changed document keeps (enough for any entry still pending).
_KEEP = 16


def mark(event: AdminEvent | None) -> dict[str, Any]:
    """The update fragment that records ``event`` on the document it changes."""
    if event is None:
        return {}
    return {"$push": {"_evts": {"$each": [event.id], "$slice": -_KEEP}}}


class AuditMixin(MongoBase):
    """Pending-then-confirmed admin log entries."""

    def _event_doc(self, event: AdminEvent) -> dict[str, Any]:
        return {"_id": event.id, "seq": time.time_ns(), "at": format_time(event.at),
                "actor": event.actor, "action": event.action, "target": event.target,
                "before": dump_json(event.before), "after": dump_json(event.after)}

    @contextmanager
    def audited(self, event: AdminEvent | None, collection: str, done: dict[str, Any], *,
                present: bool = True, finish: dict[str, Any] | None = None) -> Iterator[None]:
        """Around one change: ``done`` is the filter on ``collection`` that matches once the
        change is made (``present``) or matches nothing once it is made (not ``present``).

        ``finish`` (removals, which take several steps) says how reconciliation completes the
        change when a crash interrupted it: see :meth:`_finish`.
        """
        if event is None:
            yield
            return
        doc = self._event_doc(event)
        doc["pending"] = {"collection": collection, "done": dump_json(done), "present": present,
                          "since": format_time(utcnow()), "finish": dump_json(finish)}
        self.db["admin_log"].insert_one(doc)
        self._step("admin:pending")
        try:
            yield
        except LomasError:
            self._drop_pending(event.id)  # the change was refused: no entry
            raise
        self._step("admin:changed")
        self._confirm(event)

    def _drop_pending(self, event_id: str) -> None:
        try:
            self.db["admin_log"].delete_one({"_id": event_id, "pending": {"$exists": True}})
        except PyMongoError:  # start-up reconciliation drops it (its check fails)
            log.warning("mongodb: could not drop a pending admin log entry %s", event_id)

    def _confirm(self, event: AdminEvent) -> None:
        log_ = self.db["admin_log"]
        result = log_.update_one({"_id": event.id},
                                 {"$unset": {"pending": ""}, "$set": {"after": dump_json(event.after)}})
        if result.matched_count == 0:  # reconciled away meanwhile: the change did happen
            try:
                log_.insert_one(self._event_doc(event))
            except DuplicateKeyError:
                pass

    def reconcile_admin_log(self, grace_seconds: float | None = None) -> int:
        """Settle pending entries older than the grace; returns how many were confirmed."""
        grace = self.recovery_grace_seconds if grace_seconds is None else grace_seconds
        cutoff = format_time(utcnow() - timedelta(seconds=grace))
        log_ = self.db["admin_log"]
        confirmed = 0
        for doc in list(log_.find({"pending": {"$exists": True}})):
            pending = doc["pending"]
            if pending.get("since", "") > cutoff:
                continue  # its process may still be making the change
            done = load_json(pending["done"])
            found = self.db[pending["collection"]].count_documents(done, limit=1) > 0
            finish = load_json(pending.get("finish"))
            if found != bool(pending.get("present", True)) and finish:
                # A removal takes several steps and may have stopped half-way: finish it.
                self._finish(finish)
                found = self.db[pending["collection"]].count_documents(done, limit=1) > 0
            if found == bool(pending.get("present", True)):
                log_.update_one({"_id": doc["_id"]}, {"$unset": {"pending": ""}})
                confirmed += 1
            else:
                log_.delete_one({"_id": doc["_id"], "pending": {"$exists": True}})
        if confirmed:
            log.warning("mongodb: %d admin log entries of interrupted changes confirmed", confirmed)
        return confirmed

    def _finish(self, finish: dict[str, Any]) -> None:
        """Complete a removal a crash interrupted (only the very identity it was about)."""
        op = finish.get("op")
        if op == "remove_user":
            name, uid = finish["name"], finish["uid"]
            if self.users.count_documents({"_id": name, "uid": uid}, limit=1):
                self.tokens.delete_many({"user": name})
                self.grants.delete_many({"user": name})
                self.users.delete_one({"_id": name, "uid": uid})
        elif op == "remove_dataset":
            name, dsid = finish["name"], finish["dsid"]
            if self.datasets.count_documents({"_id": name, "dsid": dsid}, limit=1):
                self.grants.delete_many({"dataset": name})
                self.datasets.delete_one({"_id": name, "dsid": dsid})
        elif op == "revoke_tokens":
            self.tokens.delete_many({"tid": {"$in": list(finish["tids"])}})

    # -- the store interface ---------------------------------------------------------------------
    def add_admin_event(self, event: AdminEvent) -> None:
        with self.guard("add_admin_event"):
            self.db["admin_log"].insert_one(self._event_doc(event))

    def list_admin_events(self, *, cursor: str | None = None,
                          limit: int = 100) -> tuple[list[AdminEvent], str | None]:
        limit = max(1, min(int(limit), MAX_PAGE))
        query: dict[str, Any] = {"pending": {"$exists": False}}
        if cursor is not None:
            query.update(after_cursor(cursor))
        with self.guard("list_admin_events"):
            docs = list(self.db["admin_log"].find(query).sort([("seq", 1), ("_id", 1)]).limit(limit + 1))
        events = [AdminEvent(id=d["_id"], at=parse_time(d["at"]), actor=d["actor"], action=d["action"],
                             target=d["target"], before=load_json(d.get("before")),
                             after=load_json(d.get("after"))) for d in docs[:limit]]
        more = len(docs) > limit
        return events, encode_cursor([int(docs[limit - 1]["seq"]), docs[limit - 1]["_id"]]) if more \
            else None
