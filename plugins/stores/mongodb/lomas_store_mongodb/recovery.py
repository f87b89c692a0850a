"""Reconciliation of charges interrupted by a crash (see ``ledger.py`` for the steps).

Only leftovers of **dead owners** are touched (see ``lease.py``): at start-up, at every heartbeat
of a live server, and when a same-key retry finds a pending record. A live owner's records are
never touched, however old. Leftovers without a registered owner (written by older versions, or
by an owner that closed its store cleanly) are touched once older than ``recovery_grace_seconds``.

* a ``pending.<id>`` entry in a grant without an archive record: the server died between the
  charge and the archive copy. The record carried by the entry is archived as ``failed`` with
  code ``charged_failure`` (request and key kept); the charge stays (safe side).
  When its key already belongs to another archived record (two requests with one key raced
  across the first one's completion, and this one died before undoing its charge), the charge is
  refunded instead (it never ran) and the record archived ``released`` without the key.
* a ``pending.<id>`` entry whose record is no longer pending: completion died half-way; the entry
  and its key claim are removed.
* a pending record whose grant still tracks it: the server died while the query ran. The record
  becomes ``failed`` (``charged_failure``), the charge stays, and the entry is removed.
* a pending record whose grant has no entry for it: a release refunded the budget and died before
  marking the record; it is marked ``released`` (``failed`` when the grant itself is gone).

Every outcome is final, so a retry with the same ``Idempotency-Key`` replays it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from lomas_core.api import (
    ArchiveRecord,
    ChargedFailure,
    utcnow,
)
from lomas_store_mongodb.base import log
from lomas_store_mongodb.codec import (
    budget_from_doc,
    dump_json,
    format_time,
    grant_id,
    parse_time,
    record_from_doc,
    record_to_doc,
)
from lomas_store_mongodb.lease import LeaseMixin
from lomas_store_mongodb.ledger import key_field

__all__ = ["DUPLICATE_KEY", "INTERRUPTED", "RecoveryMixin", "RecoveryReport"]

INTERRUPTED = ChargedFailure("The server stopped while this query was being answered; "
                             "its cost stays charged.").to_dict()["error"]

#: The note on a refunded second charge of one Idempotency-Key (never answered).
DUPLICATE_KEY = {"code": "idempotency_key_reused",
                 "message": "A second request with an Idempotency-Key already used was charged "
                            "while its server died; it never ran and was refunded."}


@dataclass
class RecoveryReport:
    """What :meth:`RecoveryMixin.recover` fixed."""

    archived: int = 0
    cleared: int = 0
    released: int = 0
    interrupted: int = 0
    refunded: int = 0

    @property
    def total(self) -> int:
        return self.archived + self.cleared + self.released + self.interrupted + self.refunded


class RecoveryMixin(LeaseMixin):
    """Reconciles pending entries with the archive, for owners that are dead."""

    def recover(self, grace_seconds: float | None = None) -> RecoveryReport:
        """Resolve what dead owners left (see the module doc); returns counts.

        ``grace_seconds`` (default ``recovery_grace_seconds``) applies only to leftovers with no
        live owner document (older versions, owners that closed cleanly); a live owner's records
        are never touched.
        """
        return self._resolve(grace_seconds, observe=False)

    def heartbeat(self) -> int:
        """Renew this owner's lease, then resolve dead owners' records; returns how many."""
        self._renew()
        return self._resolve(None, observe=True).total

    def _settle(self, user: str, dataset: str, qid: str) -> bool:
        """Resolve one pending query now if its owner is dead (a same-key retry asks)."""
        with self.guard("recover"):
            grant = self.grants.find_one({"_id": grant_id(user, dataset)},
                                         {"user": 1, "dataset": 1, "pending": 1, "uid": 1})
            rec = self.archive.find_one({"_id": qid, "status": "pending"},
                                        {"user": 1, "dataset": 1, "idem": 1, "created_at": 1,
                                         "owner": 1})
            entry = ((grant or {}).get("pending") or {}).get(qid)
            if rec is None and entry is None:
                return False
            with self._lease_lock:
                dead, known = self._dead_owners(observe=False)
            orphaned = self._orphan_test(self.recovery_grace_seconds, dead, known)
            report = RecoveryReport()
            if grant is not None and entry is not None and rec is None:
                self._reconcile_entry(grant, qid, entry, orphaned(entry), report)
            elif rec is not None and orphaned(rec):
                self._reconcile_record(rec, report)
        if report.total:
            log.warning("mongodb store: query %s of a dead server archived as failed", qid)
        return report.total > 0

    def _orphan_test(self, grace_seconds: float | None, dead: set[str],
                     known: set[str]) -> Callable[[dict[str, Any]], bool]:
        grace = self.recovery_grace_seconds if grace_seconds is None else grace_seconds
        cutoff = utcnow() - timedelta(seconds=grace)

        def orphaned(doc: dict[str, Any]) -> bool:
            owner = doc.get("owner")
            if owner is not None and owner in known:
                return owner in dead
            created = doc.get("created_at")
            return created is not None and parse_time(created) < cutoff

        return orphaned

    def _resolve(self, grace_seconds: float | None, *, observe: bool) -> RecoveryReport:
        report = RecoveryReport()
        with self.guard("recover"):
            # Pending work is read before the owners: every owner it names registered before it
            # was written, so an owner missing from the owners read below really is gone.
            grants = list(self.grants.find({}, {"user": 1, "dataset": 1, "pending": 1, "uid": 1}))
            # The age is compared in Python, not in the query: pending records are few, and some
            # wire-compatible servers compare time strings loosely.
            pending = list(self.archive.find({"status": "pending"},
                                             {"user": 1, "dataset": 1, "idem": 1, "created_at": 1,
                                              "owner": 1}))
            with self._lease_lock:
                dead, known = self._dead_owners(observe)
            orphaned = self._orphan_test(grace_seconds, dead, known)
            for grant in grants:
                for qid, entry in (grant.get("pending") or {}).items():
                    self._reconcile_entry(grant, qid, entry, orphaned(entry), report)
            for rec in pending:
                if orphaned(rec):
                    self._reconcile_record(rec, report)
            self._forget_dead(dead)
        if report.total:
            log.warning("mongodb recovery: %d archived as failed, %d cleared, %d marked released, "
                        "%d interrupted, %d refunded (key already charged)", report.archived,
                        report.cleared, report.released, report.interrupted, report.refunded)
        return report

    def _reconcile_entry(self, grant: dict[str, Any], qid: str, entry: dict[str, Any],
                         orphaned: bool, report: RecoveryReport) -> None:
        gid = grant["_id"]
        key = entry.get("idem")
        rec = self.archive.find_one({"_id": qid}, {"status": 1})
        if rec is not None:
            if rec["status"] != "pending":
                self.grants.update_one({"_id": gid}, {"$unset": self._untrack_fields(qid, key)})
                report.cleared += 1
            return
        if not orphaned:
            return
        created = parse_time(entry.get("created_at") or format_time(utcnow()))
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
                # The key belongs to another record: two requests with one key raced across the
                # first one's completion and this one died before undoing its charge.
                self._refund_second_charge(gid, qid, entry, doc, report)
                return
        self.grants.update_one({"_id": gid}, {"$unset": self._untrack_fields(qid, key)})
        report.archived += 1

    def _refund_second_charge(self, gid: str, qid: str, entry: dict[str, Any], doc: dict[str, Any],
                              report: RecoveryReport) -> None:
        """Refund a second charge of an already-archived ``Idempotency-Key``.

        Its query never ran (``charge()`` returns only once its archive copy exists, and the key's
        unique index refused that copy), so no data was read: the refund keeps the invariant that
        a key is charged at most once. The refund comes first (one conditional update, so it
        happens once); the record is then archived ``released``, without the key, for audit.
        """
        cost = budget_from_doc(entry["cost"])
        units = self.scale.cost_units(cost)
        limbs = {k: -v for k, v in self.scale.limbs(cost).items()}
        filt: dict[str, Any] = {"_id": gid, f"pending.{qid}": {"$exists": True}}
        if entry.get("nonce"):
            filt[f"pending.{qid}.nonce"] = entry["nonce"]
        done = self.grants.update_one(
            filt, {"$unset": self._untrack_fields(qid, entry.get("idem")),
                   "$inc": {"rem_eps": units.epsilon, "rem_delta": units.delta, **limbs}})
        if not done.modified_count:
            return
        doc.pop("idem", None)
        doc.update(status="released", error=dump_json(DUPLICATE_KEY))
        try:
            self.archive.insert_one(doc)
        except DuplicateKeyError:  # archived by a concurrent recovery
            pass
        report.refunded += 1

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
