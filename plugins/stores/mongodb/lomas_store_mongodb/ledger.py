"""The charge, its archive record, completion and refunds.

Crash safety without multi-document transactions:

1. **charge**: one conditional ``find_one_and_update`` on the grant document. Its filter requires
   ``rem_* >= cost`` and that this query id is not already pending; the update decrements
   ``rem_*``, adds the exact cost to the ``spent_*`` limbs and records ``pending.<query id>``
   (exact cost, engine, time, a per-call nonce) in the same document. Two charges can never both
   pass one check.
2. The archive record is inserted (status ``pending``).
3. **complete** marks the archive record first, then removes ``pending.<id>`` from the grant.
   **release** removes ``pending.<id>`` and refunds in one conditional update on the grant (so a
   second release refunds nothing), then marks the archive record ``released``.

A crash between steps leaves a ``pending`` entry or a pending record that
:mod:`lomas_store_mongodb.recovery` reconciles at start-up; a charge is never left without a record.
"""

from __future__ import annotations

import re
import time
import uuid
from decimal import Decimal
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from lomas_core.budget import Budget
from lomas_core.errors import (
    AccessDenied,
    BudgetExceeded,
    Conflict,
    IdempotencyConflict,
    InvalidRequest,
    NotFound,
    StoreUnavailable,
)
from lomas_core.models import ArchiveRecord, QueryStatus, utcnow
from lomas_store_mongodb.base import MongoBase, log
from lomas_store_mongodb.codec import (
    budget_from_doc,
    dump_json,
    format_time,
    grant_id,
    record_from_doc,
    record_to_doc,
)
from lomas_store_mongodb.units import limb_fields

__all__ = ["LedgerMixin"]

_QUERY_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_GRANT_FIELDS = {"initial": 1, **{name: 1 for name in limb_fields()}}
_NOT_CHARGED = "The budget store is unavailable; nothing was charged. Retry later."


def _check_query_id(query_id: str) -> str:
    # The id becomes a field name (pending.<id>): no dots, no '$'.
    if not _QUERY_ID.match(query_id):
        raise InvalidRequest("invalid query id")
    return query_id


class LedgerMixin(MongoBase):
    """The budget-accounting half of the store."""

    def _remaining(self, doc: dict[str, Any]) -> Budget:
        left = budget_from_doc(doc["initial"]) - self.scale.from_limbs(doc)
        # Canonical zero ("0", not "0.0") so exports compare equal across stores.
        return Budget(left.epsilon if left.epsilon else Decimal(0),
                      left.delta if left.delta else Decimal(0))

    def _refund(self, gid: str, qid: str, cost: Budget, nonce: str | None = None) -> bool:
        """Undo a charge still pending in the grant; True when this call refunded it.

        With ``nonce``, only the charge made by that very ``charge()`` call is undone.
        """
        filt: dict[str, Any] = {"_id": gid, f"pending.{qid}": {"$exists": True}}
        if nonce is not None:
            filt[f"pending.{qid}.nonce"] = nonce
        units = self.scale.cost_units(cost)
        limbs = {k: -v for k, v in self.scale.limbs(cost).items()}
        result = self.grants.update_one(
            filt,
            {"$unset": {f"pending.{qid}": ""},
             "$inc": {"rem_eps": units.epsilon, "rem_delta": units.delta, **limbs}})
        return result.modified_count == 1

    def charge(self, record: ArchiveRecord) -> Budget:
        qid = _check_query_id(record.id)
        gid = grant_id(record.user, record.dataset)
        cost = self.scale.cost_units(record.cost)
        key = record.idempotency_key
        # Tells a retried write of this call (pymongo retries once on network errors) apart from
        # a second call with the same query id.
        nonce = uuid.uuid4().hex
        with self.guard("charge", _NOT_CHARGED):
            if key is not None and self.archive.count_documents(
                    {"user": record.user, "idem": key}, limit=1):
                raise IdempotencyConflict("this Idempotency-Key was already used for another request")
            doc = None
            if self.scale.fits_counter(cost):
                entry = {"cost": record.cost.as_strings(), "engine": record.engine,
                         "created_at": format_time(record.created_at), "idem": key, "nonce": nonce}
                try:
                    doc = self.grants.find_one_and_update(
                        {"_id": gid, "rem_eps": {"$gte": cost.epsilon},
                         "rem_delta": {"$gte": cost.delta}, f"pending.{qid}": {"$exists": False}},
                        {"$inc": {"rem_eps": -cost.epsilon, "rem_delta": -cost.delta,
                                  **self.scale.limbs(record.cost)},
                         "$set": {f"pending.{qid}": entry}},
                        projection=_GRANT_FIELDS,
                        return_document=ReturnDocument.AFTER)
                except PyMongoError:
                    # The update may have landed before the connection broke: undo exactly this
                    # call's charge if it did (the query will not run).
                    self._undo(gid, qid, record.cost, nonce)
                    raise
            if doc is None:
                doc = self._refuse(record, gid, nonce)
        remaining = self._remaining(doc)
        stored = record.model_copy(update={"status": "pending", "remaining": remaining,
                                           "completed_at": None, "result": None, "error": None})
        self._insert_record(stored, gid, nonce)
        record.status = "pending"
        record.remaining = remaining
        return remaining

    def _refuse(self, record: ArchiveRecord, gid: str, nonce: str) -> dict[str, Any]:
        """Explain why the conditional charge matched nothing (or find our own retried write)."""
        qid = record.id
        current = self.grants.find_one(
            {"_id": gid}, {**_GRANT_FIELDS, f"pending.{qid}": 1})
        if current is None:
            raise AccessDenied(f"you do not have access to dataset '{record.dataset}'")
        entry = (current.get("pending") or {}).get(qid)
        if entry is not None:
            if entry.get("nonce") == nonce:
                return current  # a retried write had already charged this very call
            raise Conflict(f"query id '{qid}' already exists")
        rem = self._remaining(current)
        raise BudgetExceeded(
            f"the query needs epsilon={record.cost.epsilon}, delta={record.cost.delta} but only "
            f"epsilon={rem.epsilon}, delta={rem.delta} remain; nothing was charged",
            needed=record.cost.as_strings(), remaining=rem.as_strings())

    def _insert_record(self, record: ArchiveRecord, gid: str, nonce: str) -> None:
        doc = record_to_doc(record, time.time_ns())
        doc["nonce"] = nonce
        try:
            self.archive.insert_one(doc)
            return
        except DuplicateKeyError:
            try:
                same = self.archive.find_one({"_id": record.id}, {"nonce": 1})
            except PyMongoError:
                same = None
            if same is not None and same.get("nonce") == nonce:
                return  # our own insert, applied by a retried write
            self._undo(gid, record.id, record.cost, nonce)
            if same is not None:
                raise Conflict(f"query id '{record.id}' already exists") from None
            raise IdempotencyConflict(
                "this Idempotency-Key was already used for another request") from None
        except PyMongoError as exc:
            log.warning("mongodb archive insert failed on %s: %s", self.hosts, type(exc).__name__)
            self._undo(gid, record.id, record.cost, nonce)
            raise StoreUnavailable(_NOT_CHARGED) from None

    def _undo(self, gid: str, qid: str, cost: Budget, nonce: str) -> None:
        try:
            self._refund(gid, qid, cost, nonce)
        except PyMongoError:
            # The pending entry stays in the grant; start-up recovery archives it as failed and
            # the budget stays spent (the safe side).
            log.error("mongodb: could not undo charge of query %s on %s", qid, gid)

    def complete(self, query_id: str, status: QueryStatus, *, result: Any = None,
                 error: dict[str, Any] | None = None) -> None:
        if status not in ("success", "failed"):
            raise ValueError("complete() takes 'success' or 'failed'")
        _check_query_id(query_id)
        with self.guard("complete"):
            doc = self.archive.find_one_and_update(
                {"_id": query_id, "status": "pending"},
                {"$set": {"status": status, "completed_at": format_time(utcnow()),
                          "result": dump_json(result), "error": dump_json(error)}},
                projection={"user": 1, "dataset": 1})
            if doc is None:
                if self.archive.count_documents({"_id": query_id}, limit=1) == 0:
                    raise NotFound(f"query '{query_id}' not found")
                return
            self.grants.update_one(
                {"_id": grant_id(doc["user"], doc["dataset"]), f"pending.{query_id}": {"$exists": True}},
                {"$unset": {f"pending.{query_id}": ""}})

    def release(self, query_id: str) -> None:
        _check_query_id(query_id)
        with self.guard("release"):
            doc = self.archive.find_one({"_id": query_id})
            if doc is None:
                raise NotFound(f"query '{query_id}' not found")
            if doc["status"] != "pending":
                return
            self._refund(grant_id(doc["user"], doc["dataset"]), query_id, budget_from_doc(doc["cost"]))
            self.archive.update_one({"_id": query_id, "status": "pending"},
                                    {"$set": {"status": "released",
                                              "completed_at": format_time(utcnow())}})

    def get_record(self, query_id: str) -> ArchiveRecord:
        with self.guard("get_record"):
            doc = self.archive.find_one({"_id": query_id})
        if doc is None:
            raise NotFound(f"query '{query_id}' not found")
        return record_from_doc(doc)

    def find_by_idempotency_key(self, user: str, key: str) -> ArchiveRecord | None:
        with self.guard("find_by_idempotency_key"):
            doc = self.archive.find_one({"user": user, "idem": key})
        return None if doc is None else record_from_doc(doc)

    def _find_records(self, query: dict[str, Any]) -> list[ArchiveRecord]:
        with self.guard("list_archive"):
            docs = list(self.archive.find(query).sort([("created_at", 1), ("seq", 1)]))
        return [record_from_doc(d) for d in docs]

    def list_archive(self, user: str | None = None, dataset: str | None = None) -> list[ArchiveRecord]:
        query: dict[str, Any] = {}
        if user is not None:
            query["user"] = user
        if dataset is not None:
            query["dataset"] = dataset
        return self._find_records(query)

    def pending_records(self) -> list[ArchiveRecord]:
        return self._find_records({"status": "pending"})
