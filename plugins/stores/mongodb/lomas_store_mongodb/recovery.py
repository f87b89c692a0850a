"""Start-up reconciliation of charges interrupted by a crash (see ``ledger.py`` for the steps).

Only leftovers older than ``recovery_grace_seconds`` are touched: another server sharing the
database may be in the middle of them (the grace must exceed the query timeout).

* a ``pending.<id>`` entry in a grant without an archive record: the server died between the
  charge and the archive copy. The record carried by the entry is archived as ``failed`` with
  code ``charged_failure`` (request and key kept); the charge stays (safe side).
* a ``pending.<id>`` entry whose record is no longer pending: completion died half-way; the entry
  and its key claim are removed.
* a pending record whose grant still tracks it: the server died while the query ran. The record
  becomes ``failed`` (``charged_failure``), the charge stays, and the entry is removed.
* a pending record whose grant has no entry for it: a release refunded the budget and died before
  marking the record; it is marked ``released`` (``failed`` when the grant itself is gone).

Every outcome is final, so a retry with the same ``Idempotency-Key`` replays it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from lomas_core.api import ArchiveRecord, ChargedFailure, utcnow
from lomas_store_mongodb.base import MongoBase, log
from lomas_store_mongodb.codec import (
    budget_from_doc,
    dump_json,
    format_time,
    grant_id,
    parse_time,
    record_from_doc,
    record_to_doc,
)
from lomas_store_mongodb.ledger import key_field

__all__ = ["INTERRUPTED", "RecoveryMixin", "RecoveryReport"]

INTERRUPTED = ChargedFailure("The server stopped while this query was being answered; "
                             "its cost stays charged.").to_dict()["error"]


@dataclass
class RecoveryReport:
    """What :meth:`RecoveryMixin.recover` fixed."""

    archived: int = 0
    cleared: int = 0
    released: int = 0
    interrupted: int = 0

    @property
    def total(self) -> int:
        return self.archived + self.cleared + self.released + self.interrupted


class RecoveryMixin(MongoBase):
    """Reconciles pending entries with the archive."""

    def recover(self, grace_seconds: float | None = None) -> RecoveryReport:
        """Fix leftovers of interrupted charges older than ``grace_seconds``; returns counts."""
        grace = self.recovery_grace_seconds if grace_seconds is None else grace_seconds
        cutoff = utcnow() - timedelta(seconds=grace)
        report = RecoveryReport()
        with self.guard("recover"):
            for grant in self.grants.find({}, {"user": 1, "dataset": 1, "pending": 1, "uid": 1}):
                for qid, entry in (grant.get("pending") or {}).items():
                    self._reconcile_entry(grant, qid, entry, cutoff, report)
            # The age is compared here, not in the query: pending records are few, and some
            # wire-compatible servers compare time strings loosely.
            pending = list(self.archive.find({"status": "pending"},
                                             {"user": 1, "dataset": 1, "idem": 1, "created_at": 1}))
            for rec in pending:
                if parse_time(rec["created_at"]) < cutoff:
                    self._reconcile_record(rec, report)
        if report.total:
            log.warning("mongodb recovery: %d archived as failed, %d cleared, %d marked released, "
                        "%d interrupted", report.archived, report.cleared, report.released,
                        report.interrupted)
        return report

    def _reconcile_entry(self, grant: dict[str, Any], qid: str, entry: dict[str, Any],
                         cutoff: datetime, report: RecoveryReport) -> None:
        gid = grant["_id"]
        key = entry.get("idem")
        rec = self.archive.find_one({"_id": qid}, {"status": 1})
        if rec is not None:
            if rec["status"] != "pending":
                self.grants.update_one({"_id": gid}, {"$unset": self._untrack_fields(qid, key)})
                report.cleared += 1
            return
        created = parse_time(entry.get("created_at") or format_time(utcnow()))
        if created >= cutoff:
            return
        if isinstance(entry.get("record"), dict):
            record = record_from_doc(entry["record"])
        else:  # an entry written by an older version or an import: no request kept
            record = ArchiveRecord(
                id=qid, user=grant["user"], dataset=grant["dataset"],
                engine=entry.get("engine", "?"), request={}, cost=budget_from_doc(entry["cost"]),
                created_at=created, idempotency_key=key, user_id=grant.get("uid"))
        record = record.model_copy(update={"status": "failed", "completed_at": utcnow(),
                                           "error": INTERRUPTED, "result": None})
        doc = record_to_doc(record, 0)
        if entry.get("nonce"):
            doc["nonce"] = entry["nonce"]  # a late archive copy by the charging call sees its own
        try:
            self.archive.insert_one(doc)
        except DuplicateKeyError:
            if self.archive.count_documents({"_id": qid}, limit=1) == 0:
                doc.pop("idem", None)  # the key went to another record meanwhile
                self.archive.insert_one(doc)
        self.grants.update_one({"_id": gid}, {"$unset": self._untrack_fields(qid, key)})
        report.archived += 1

    def _reconcile_record(self, rec: dict[str, Any], report: RecoveryReport) -> None:
        qid = rec["_id"]
        gid = grant_id(rec["user"], rec["dataset"])
        now = format_time(utcnow())
        if self.grants.count_documents({"_id": gid, f"pending.{qid}": {"$exists": True}}, limit=1):
            # Still charged: the server died while the query ran. Final: failed, charge kept.
            done = self.archive.update_one(
                {"_id": qid, "status": "pending"},
                {"$set": {"status": "failed", "completed_at": now, "error": dump_json(INTERRUPTED)}})
            self.grants.update_one({"_id": gid}, {"$unset": self._untrack_fields(qid, rec.get("idem"))})
            report.interrupted += done.modified_count
            return
        grant_exists = self.grants.count_documents({"_id": gid}, limit=1) > 0
        update: dict[str, Any] = {"completed_at": now}
        if grant_exists:
            update["status"] = "released"
        else:
            update.update(status="failed", error='{"code":"grant_removed","message":'
                          '"The grant was removed while this query was pending."}')
        self.archive.update_one({"_id": qid, "status": "pending"}, {"$set": update})
        report.released += 1

    @staticmethod
    def _untrack_fields(qid: str, key: str | None) -> dict[str, str]:
        fields = {f"pending.{qid}": ""}
        if key is not None:
            fields[key_field(key)] = ""
        return fields
