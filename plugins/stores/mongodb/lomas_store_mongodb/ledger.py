"""The charge, its archive record, completion and refunds.

Crash safety without multi-document transactions: **the record goes with the charge.**

1. **charge**: one conditional ``find_one_and_update`` on the grant document. Its filter requires
   ``rem_* >= cost``, that this query id is not already pending and, with an ``Idempotency-Key``,
   that the key is not claimed in this grant (``keys.<hash of key>``); the update decrements
   ``rem_*``, adds the exact cost to the ``spent_*`` limbs, stores the **whole pending archive
   record** (request, key, cost, time, a per-call nonce) under ``pending.<query id>`` and claims
   the key, all in that one document. A charge without a record therefore cannot exist, and a
   same-key retry always finds the record (:meth:`LedgerMixin.find_by_idempotency_key` looks in
   the archive, then in the grant's claimed keys). Two charges can never both pass one check.
2. The same record is copied into the archive collection (status ``pending``).
3. **complete** marks the archive record first, then removes ``pending.<id>`` and the key claim
   from the grant. **release** removes them and refunds in one conditional update on the grant (so
   a second release refunds nothing), then marks the archive record ``released``.

A crash between steps leaves leftovers that :mod:`lomas_store_mongodb.recovery` finishes at
start-up, keeping the original request so that an identical retry replays the final outcome.
"""

from __future__ import annotations

import re
import time
import uuid
from decimal import Decimal
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from lomas_core.api import (
    MAX_PAGE,
    AccessDenied,
    ArchiveFilter,
    ArchivePage,
    ArchiveRecord,
    Budget,
    BudgetExceeded,
    ChargedFailure,
    Conflict,
    IdempotencyConflict,
    InvalidRequest,
    NotFound,
    QueryStatus,
    StoreUnavailable,
    Suspended,
    encode_cursor,
    short_digest,
    utcnow,
)
from lomas_store_mongodb.base import MongoBase, log
from lomas_store_mongodb.codec import (
    after_cursor,
    budget_from_doc,
    dump_json,
    format_time,
    grant_id,
    is_active,
    record_from_doc,
    record_to_doc,
)
from lomas_store_mongodb.units import limb_fields

__all__ = ["LedgerMixin", "key_field"]

_QUERY_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_GRANT_FIELDS = {"initial": 1, "dsid": 1, **{name: 1 for name in limb_fields()}}
_NOT_CHARGED = "The budget store is unavailable; nothing was charged. Retry later."


def key_field(key: str) -> str:
    """The grant field claiming an ``Idempotency-Key`` (a hash: keys may hold dots or ``$``)."""
    return "keys." + short_digest(key, 40)


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

    def _refund(self, gid: str, qid: str, cost: Budget, nonce: str | None = None,
                key: str | None = None) -> bool:
        """Undo a charge still pending in the grant; True when this call refunded it.

        With ``nonce``, only the charge made by that very ``charge()`` call is undone.
        """
        filt: dict[str, Any] = {"_id": gid, f"pending.{qid}": {"$exists": True},
                                f"pending.{qid}.reset": {"$exists": False}}
        if nonce is not None:
            filt[f"pending.{qid}.nonce"] = nonce
        units = self.scale.cost_units(cost)
        limbs = {k: -v for k, v in self.scale.limbs(cost).items()}
        result = self.grants.update_one(
            filt,
            {"$unset": self._untrack(qid, key),
             "$inc": {"rem_eps": units.epsilon, "rem_delta": units.delta, **limbs}})
        if result.modified_count == 1:
            return True
        # Charged before a ``reset_spent`` re-grant: its cost is no longer counted, so the refund
        # only drops the entry (spent never goes below zero).
        filt[f"pending.{qid}.reset"] = True
        return self.grants.update_one(filt, {"$unset": self._untrack(qid, key)}).modified_count == 1

    @staticmethod
    def _untrack(qid: str, key: str | None) -> dict[str, str]:
        """The ``$unset`` that drops a pending entry and its key claim from a grant."""
        fields = {f"pending.{qid}": ""}
        if key is not None:
            fields[key_field(key)] = ""
        return fields

    def _uid(self, user: str) -> str | None:
        """The id of the current user named ``user`` (None when absent)."""
        doc = self.users.find_one({"_id": user}, {"uid": 1})
        return None if doc is None else doc.get("uid")

    def _owner_filter(self, user: str) -> dict[str, Any]:
        """Records of "user": the current holder's (by id), else those archived under the name."""
        uid = self._uid(user)
        return {"uid": uid} if uid is not None else {"user": user}

    def _key_taken(self, user: str, key: str, uid: str | None) -> bool:
        """Whether ``user`` already used ``key`` (archived, or claimed by a pending charge)."""
        if self.archive.count_documents({"uid": uid, "idem": key}, limit=1):
            return True
        return bool(self.grants.count_documents({"user": user, key_field(key): {"$exists": True}},
                                                limit=1))

    def charge(self, record: ArchiveRecord) -> Budget:
        qid = _check_query_id(record.id)
        gid = grant_id(record.user, record.dataset)
        cost = self.scale.cost_units(record.cost)
        key = record.idempotency_key
        # Tells a retried write of this call (pymongo retries once on network errors) apart from
        # a second call with the same query id.
        nonce = uuid.uuid4().hex
        stored = record.model_copy(update={"status": "pending", "remaining": None,
                                           "completed_at": None, "result": None, "error": None})
        record_doc = record_to_doc(stored, time.time_ns())
        record_doc["nonce"] = nonce
        with self.guard("charge", _NOT_CHARGED):
            # The process answering this query: recovery leaves the charge alone while it lives.
            record_doc["owner"] = self._ensure_lease()
            uid = self._uid(record.user)
            if uid is None:
                raise AccessDenied(f"you do not have access to dataset '{record.dataset}'")
            record_doc["uid"] = uid
            if key is not None and self._key_taken(record.user, key, uid):
                raise IdempotencyConflict("this Idempotency-Key was already used for another request")
            self._step("charge:checked")
            doc = None
            if self.scale.fits_counter(cost):
                # The pending record travels inside the charge: one document, one atomic update.
                entry = {"cost": record.cost.as_strings(), "engine": record.engine,
                         "created_at": record_doc["created_at"], "idem": key, "nonce": nonce,
                         "owner": record_doc["owner"], "record": record_doc}
                filt: dict[str, Any] = {"_id": gid, "rem_eps": {"$gte": cost.epsilon},
                                        "rem_delta": {"$gte": cost.delta},
                                        "suspended": {"$ne": True}, "active": {"$ne": False},
                                        "uid": uid,  # this very identity's grant
                                        f"pending.{qid}": {"$exists": False}}
                claims: dict[str, Any] = {f"pending.{qid}": entry}
                if key is not None:
                    filt[key_field(key)] = {"$exists": False}
                    claims[key_field(key)] = qid
                try:
                    doc = self.grants.find_one_and_update(
                        filt,
                        {"$inc": {"rem_eps": -cost.epsilon, "rem_delta": -cost.delta,
                                  **self.scale.limbs(record.cost)},
                         "$set": claims},
                        projection=_GRANT_FIELDS,
                        return_document=ReturnDocument.AFTER)
                except PyMongoError:
                    # The update may have landed before the connection broke: undo exactly this
                    # call's charge if it did (the query will not run).
                    self._undo(gid, qid, record.cost, nonce, key)
                    raise
            if doc is None:
                doc = self._refuse(record, gid, nonce)
        self._step("charge:charged")
        remaining = self._remaining(doc)
        record_doc["remaining"] = remaining.as_strings()
        if doc.get("dsid"):
            record_doc["dsid"] = doc["dsid"]
        self._insert_record(record_doc, record, gid, nonce)
        self._step("charge:archived")
        record.status = "pending"
        record.remaining = remaining
        record.user_id = uid
        record.dataset_id = doc.get("dsid")
        return remaining

    def _refuse(self, record: ArchiveRecord, gid: str, nonce: str) -> dict[str, Any]:
        """Explain why the conditional charge matched nothing (or find our own retried write)."""
        qid = record.id
        key = record.idempotency_key
        projection: dict[str, Any] = {**_GRANT_FIELDS, "pending": 1, "keys": 1, "suspended": 1,
                                      "active": 1}
        current = self.grants.find_one({"_id": gid}, projection)
        if current is None or (not is_active(current)
                               and (current.get("pending") or {}).get(qid) is None):
            raise AccessDenied(f"you do not have access to dataset '{record.dataset}'")
        if current.get("suspended") and (current.get("pending") or {}).get(qid) is None:
            raise Suspended("your account is suspended; nothing was charged")
        entry = (current.get("pending") or {}).get(qid)
        if entry is not None:
            if entry.get("nonce") == nonce:
                return current  # a retried write had already charged this very call
            raise Conflict(f"query id '{qid}' already exists")
        if key is not None and key_field(key)[5:] in (current.get("keys") or {}):
            raise IdempotencyConflict("this Idempotency-Key was already used for another request")
        rem = self._remaining(current)
        raise BudgetExceeded(
            f"the query needs epsilon={record.cost.epsilon}, delta={record.cost.delta} but only "
            f"epsilon={rem.epsilon}, delta={rem.delta} remain; nothing was charged",
            needed=record.cost.as_strings(), remaining=rem.as_strings())

    def _insert_record(self, doc: dict[str, Any], record: ArchiveRecord, gid: str,
                       nonce: str) -> None:
        key = record.idempotency_key
        try:
            self.archive.insert_one(doc)
            return
        except DuplicateKeyError:
            try:
                same = self.archive.find_one({"_id": record.id}, {"nonce": 1, "status": 1})
            except PyMongoError:
                same = None
            if same is not None and same.get("nonce") == nonce:
                if same.get("status") == "pending":
                    return  # our own insert, applied by a retried write
                # Recovery archived this charge as interrupted meanwhile: it stays charged.
                raise ChargedFailure("the budget store took too long to archive this query; "
                                     "its cost stays charged") from None
            self._undo(gid, record.id, record.cost, nonce, key)
            if same is not None:
                raise Conflict(f"query id '{record.id}' already exists") from None
            raise IdempotencyConflict(
                "this Idempotency-Key was already used for another request") from None
        except PyMongoError as exc:
            log.warning("mongodb archive insert failed on %s: %s", self.hosts, type(exc).__name__)
            self._undo(gid, record.id, record.cost, nonce, key)
            raise StoreUnavailable(_NOT_CHARGED) from None

    def _undo(self, gid: str, qid: str, cost: Budget, nonce: str, key: str | None) -> None:
        try:
            self._refund(gid, qid, cost, nonce, key)
        except PyMongoError:
            # The pending entry (with its record) stays in the grant; start-up recovery archives
            # it as failed and the budget stays spent (the safe side).
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
                projection={"user": 1, "dataset": 1, "idem": 1})
            if doc is None:
                if self.archive.count_documents({"_id": query_id}, limit=1) == 0:
                    raise NotFound(f"query '{query_id}' not found")
                return
            self._step("complete:archived")
            self.grants.update_one(
                {"_id": grant_id(doc["user"], doc["dataset"]), f"pending.{query_id}": {"$exists": True}},
                {"$unset": self._untrack(query_id, doc.get("idem"))})
        self._step("complete:untracked")

    def release(self, query_id: str) -> None:
        _check_query_id(query_id)
        with self.guard("release"):
            doc = self.archive.find_one({"_id": query_id})
            if doc is None:
                raise NotFound(f"query '{query_id}' not found")
            if doc["status"] != "pending":
                return
            self._refund(grant_id(doc["user"], doc["dataset"]), query_id, budget_from_doc(doc["cost"]),
                         key=doc.get("idem"))
            self._step("release:refunded")
            self.archive.update_one({"_id": query_id, "status": "pending"},
                                    {"$set": {"status": "released",
                                              "completed_at": format_time(utcnow())}})
        self._step("release:archived")

    def get_record(self, query_id: str) -> ArchiveRecord:
        with self.guard("get_record"):
            doc = self.archive.find_one({"_id": query_id})
        if doc is None:
            raise NotFound(f"query '{query_id}' not found")
        return record_from_doc(doc)

    def find_by_idempotency_key(self, user: str, key: str) -> ArchiveRecord | None:
        field = key_field(key)
        with self.guard("find_by_idempotency_key"):
            uid = self._uid(user)
            if uid is None:
                return None
            doc = self.archive.find_one({"uid": uid, "idem": key})
            if doc is not None:
                return record_from_doc(doc)
            # Charged but not yet copied to the archive: the record is in the grant.
            # Whole sub-documents are projected: some wire-compatible servers flatten dotted
            # projections.
            grant = self.grants.find_one({"user": user, field: {"$exists": True}},
                                         {"keys": 1, "pending": 1})
            if grant is None:
                return None
            qid = (grant.get("keys") or {}).get(field[5:])
            entry = (grant.get("pending") or {}).get(qid) if isinstance(qid, str) else None
            if entry is not None and isinstance(entry.get("record"), dict):
                return record_from_doc(entry["record"])
            # The archive copy landed between the two reads.
            doc = self.archive.find_one({"uid": uid, "idem": key})
        return None if doc is None else record_from_doc(doc)

    def _find_records(self, query: dict[str, Any]) -> list[ArchiveRecord]:
        with self.guard("list_archive"):
            docs = list(self.archive.find(query).sort([("created_at", 1), ("seq", 1)]))
        return [record_from_doc(d) for d in docs]

    def list_archive(self, user: str | None = None, dataset: str | None = None) -> list[ArchiveRecord]:
        query: dict[str, Any] = {}
        if user is not None:
            with self.guard("list_archive"):
                query.update(self._owner_filter(user))
        if dataset is not None:
            query["dataset"] = dataset
        return self._find_records(query)

    def list_archive_page(self, where: ArchiveFilter, *, cursor: str | None = None,
                          limit: int = 100) -> ArchivePage:
        """Keyset pagination on ``(seq, _id)`` (insertion order); times are compared here, since
        some wire-compatible servers compare time strings loosely."""
        limit = max(1, min(int(limit), MAX_PAGE))
        query: dict[str, Any] = {k: v for k, v in (("dataset", where.dataset), ("uid", where.user_id),
                                                    ("status", where.status), ("engine", where.engine))
                                 if v is not None}
        if where.user is not None:
            with self.guard("list_archive"):
                owner = self._owner_filter(where.user)
            if "uid" in query and owner.get("uid") not in (None, query["uid"]):
                return ArchivePage([], None)
            query.update(owner)
        if cursor is not None:
            query.update(after_cursor(cursor))
        records: list[ArchiveRecord] = []
        more = False
        with self.guard("list_archive"):
            for doc in self.archive.find(query).sort([("seq", 1), ("_id", 1)]).batch_size(limit + 1):
                record = record_from_doc(doc)
                if not where.matches(record):
                    continue
                if len(records) == limit:
                    more = True
                    break
                records.append(record)
                last_doc = doc
        next_cursor = encode_cursor([int(last_doc["seq"]), last_doc["_id"]]) if more else None
        return ArchivePage(records, next_cursor)

    def pending_records(self) -> list[ArchiveRecord]:
        records = self._find_records({"status": "pending"})
        known = {r.id for r in records}
        with self.guard("pending_records"):
            grants = list(self.grants.find({}, {"pending": 1}))
        for grant in grants:
            for qid, entry in (grant.get("pending") or {}).items():
                if qid not in known and isinstance(entry.get("record"), dict):
                    records.append(record_from_doc(entry["record"]))
        return records
