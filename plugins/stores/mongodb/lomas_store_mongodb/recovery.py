"""Start-up reconciliation of charges interrupted by a crash (see ``ledger.py`` for the steps).

Only leftovers older than ``recovery_grace_seconds`` are touched: another server sharing the
database may be in the middle of them.

* a ``pending.<id>`` entry in a grant without an archive record: the server died between the
  charge and the archive insert. A ``failed`` record is created; the charge stays (safe side).
* a ``pending.<id>`` entry whose record is no longer pending: completion died half-way; the entry
  is removed.
* a pending record whose grant has no entry for it: a release refunded the budget and died before
  marking the record; it is marked ``released`` (``failed`` when the grant itself is gone).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from lomas_core.models import ArchiveRecord, utcnow
from lomas_store_mongodb.base import MongoBase, log
from lomas_store_mongodb.codec import budget_from_doc, format_time, grant_id, parse_time, record_to_doc

__all__ = ["RecoveryMixin", "RecoveryReport"]

_INTERRUPTED = {"code": "interrupted",
                "message": "The server stopped between charging and archiving this query; "
                           "its cost stays charged."}


@dataclass
class RecoveryReport:
    """What :meth:`RecoveryMixin.recover` fixed."""

    archived: int = 0
    cleared: int = 0
    released: int = 0

    @property
    def total(self) -> int:
        return self.archived + self.cleared + self.released


class RecoveryMixin(MongoBase):
    """Reconciles pending entries with the archive."""

    def recover(self, grace_seconds: float | None = None) -> RecoveryReport:
        """Fix leftovers of interrupted charges older than ``grace_seconds``; returns counts."""
        grace = self.recovery_grace_seconds if grace_seconds is None else grace_seconds
        cutoff = utcnow() - timedelta(seconds=grace)
        report = RecoveryReport()
        with self.guard("recover"):
            for grant in self.grants.find({}, {"user": 1, "dataset": 1, "pending": 1}):
                for qid, entry in (grant.get("pending") or {}).items():
                    self._reconcile_entry(grant, qid, entry, cutoff, report)
            stale = self.archive.find({"status": "pending", "created_at": {"$lt": format_time(cutoff)}},
                                      {"user": 1, "dataset": 1})
            for rec in list(stale):
                self._reconcile_record(rec, report)
        if report.total:
            log.warning("mongodb recovery: %d archived as failed, %d cleared, %d marked released",
                        report.archived, report.cleared, report.released)
        return report

    def _reconcile_entry(self, grant: dict[str, Any], qid: str, entry: dict[str, Any],
                         cutoff: Any, report: RecoveryReport) -> None:
        gid = grant["_id"]
        rec = self.archive.find_one({"_id": qid}, {"status": 1})
        if rec is not None:
            if rec["status"] != "pending":
                self.grants.update_one({"_id": gid}, {"$unset": {f"pending.{qid}": ""}})
                report.cleared += 1
            return
        created = parse_time(entry.get("created_at") or format_time(utcnow()))
        if created >= cutoff:
            return
        record = ArchiveRecord(
            id=qid, user=grant["user"], dataset=grant["dataset"], engine=entry.get("engine", "?"),
            request={}, cost=budget_from_doc(entry["cost"]),
            status="failed", created_at=created, completed_at=utcnow(), error=_INTERRUPTED,
            idempotency_key=entry.get("idem"))
        try:
            self.archive.insert_one(record_to_doc(record, 0))
        except DuplicateKeyError:
            if self.archive.count_documents({"_id": qid}, limit=1) == 0:
                record.idempotency_key = None  # the key went to another record meanwhile
                self.archive.insert_one(record_to_doc(record, 0))
        self.grants.update_one({"_id": gid}, {"$unset": {f"pending.{qid}": ""}})
        report.archived += 1

    def _reconcile_record(self, rec: dict[str, Any], report: RecoveryReport) -> None:
        qid = rec["_id"]
        gid = grant_id(rec["user"], rec["dataset"])
        if self.grants.count_documents({"_id": gid, f"pending.{qid}": {"$exists": True}}, limit=1):
            return  # still charged and tracked: a running (or abandoned) query, left for audit
        grant_exists = self.grants.count_documents({"_id": gid}, limit=1) > 0
        update: dict[str, Any] = {"completed_at": format_time(utcnow())}
        if grant_exists:
            update["status"] = "released"
        else:
            update.update(status="failed", error='{"code":"grant_removed","message":'
                          '"The grant was removed while this query was pending."}')
        self.archive.update_one({"_id": qid, "status": "pending"}, {"$set": update})
        report.released += 1
