"""Mapping between lomas models and MongoDB documents.

User-supplied structures (query requests, results, errors, dataset options) are stored as JSON
text, never as nested documents: their keys may start with ``$`` or contain dots, which MongoDB
would treat as operators or paths. Timestamps are fixed-width ISO-8601 UTC strings so that they
round-trip to the microsecond and sort as text.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from lomas_core.api import (
    ArchiveRecord,
    Budget,
    DatasetDescription,
    InvalidRequest,
    decode_cursor,
    format_time,
    parse_time,
)

__all__ = [
    "after_cursor",
    "budget_from_doc",
    "budget_to_doc",
    "dataset_from_doc",
    "dataset_to_doc",
    "dump_json",
    "format_time",
    "grant_id",
    "load_json",
    "parse_time",
    "record_from_doc",
    "record_to_doc",
]


def after_cursor(cursor: str) -> dict[str, Any]:
    """The filter of the page after ``cursor`` in ``(seq, _id)`` order (archive, admin log)."""
    position = decode_cursor(cursor)
    if len(position) != 2 or not isinstance(position[0], int) or not isinstance(position[1], str):
        raise InvalidRequest("invalid cursor: pass back the next_cursor of a previous page")
    seq, last = position
    return {"$or": [{"seq": {"$gt": seq}}, {"seq": seq, "_id": {"$gt": last}}]}


def grant_id(user: str, dataset: str) -> str:
    """The ``_id`` of a grant document. Names never contain '/' (see ``NAME_PATTERN``)."""
    return f"{user}/{dataset}"


def dump_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), default=str)


def load_json(value: Any) -> Any:
    return None if value is None else json.loads(value)


def budget_to_doc(budget: Budget) -> dict[str, str]:
    return budget.as_strings()


def budget_from_doc(doc: dict[str, Any]) -> Budget:
    return Budget(Decimal(doc["epsilon"]), Decimal(doc["delta"]))


def record_to_doc(record: ArchiveRecord, seq: int) -> dict[str, Any]:
    """An archive record as stored; ``seq`` breaks ties between equal ``created_at``."""
    doc: dict[str, Any] = {
        "_id": record.id,
        "user": record.user,
        "dataset": record.dataset,
        "engine": record.engine,
        "request": dump_json(record.request),
        "cost": budget_to_doc(record.cost),
        "status": record.status,
        "created_at": format_time(record.created_at),
        "completed_at": format_time(record.completed_at) if record.completed_at else None,
        "result": dump_json(record.result),
        "error": dump_json(record.error),
        "remaining": budget_to_doc(record.remaining) if record.remaining is not None else None,
        "seq": seq,
    }
    if record.user_id is not None:
        doc["uid"] = record.user_id
    if record.dataset_id is not None:
        doc["dsid"] = record.dataset_id
    if record.idempotency_key is not None:
        # Absent (not null) when unused, so the partial unique index ignores it.
        doc["idem"] = record.idempotency_key
    return doc


def record_from_doc(doc: dict[str, Any]) -> ArchiveRecord:
    return ArchiveRecord(
        id=doc["_id"],
        user=doc["user"],
        dataset=doc["dataset"],
        engine=doc["engine"],
        request=load_json(doc.get("request")) or {},
        cost=budget_from_doc(doc["cost"]),
        status=doc["status"],
        created_at=parse_time(doc["created_at"]),
        completed_at=parse_time(doc["completed_at"]) if doc.get("completed_at") else None,
        result=load_json(doc.get("result")),
        error=load_json(doc.get("error")),
        idempotency_key=doc.get("idem"),
        remaining=budget_from_doc(doc["remaining"]) if doc.get("remaining") else None,
        user_id=doc.get("uid"),
        dataset_id=doc.get("dsid"),
    )


def dataset_to_doc(dataset: DatasetDescription) -> dict[str, Any]:
    """The description as JSON text; its id (when set) in ``dsid``."""
    doc = {"_id": dataset.name, "name": dataset.name,
           "description": dataset.model_dump_json(exclude={"id"})}
    if dataset.id is not None:
        doc["dsid"] = dataset.id
    return doc


def dataset_from_doc(doc: dict[str, Any]) -> DatasetDescription:
    return DatasetDescription.model_validate_json(doc["description"]).model_copy(
        update={"id": doc.get("dsid")})


def is_active(grant: dict[str, Any]) -> bool:
    """Whether a grant document gives access (absent: written before revocation kept grants;
    some wire-compatible servers store the flag as 0/1)."""
    return bool(grant.get("active", True))
