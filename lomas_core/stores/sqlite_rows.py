"""Row <-> model mapping of the ``sqlite`` store (decimals as text, user JSON as text)."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from typing import Any

from lomas_core.budget import Budget
from lomas_core.models import ArchiveRecord, Grant
from lomas_core.stores.state import format_time, parse_time

__all__ = [
    "GRANT_COLUMNS",
    "INSERT_RECORD",
    "RECORD_COLUMNS",
    "budget",
    "dump_json",
    "grant_from_row",
    "load_json",
    "record_from_row",
    "record_params",
]

GRANT_COLUMNS = ("user, dataset, initial_eps, initial_delta, spent_eps, spent_delta, active, id, "
                 "dataset_id")
RECORD_COLUMNS = ("id, user, dataset, engine, request, cost_eps, cost_delta, status, created_at, "
                  "completed_at, result, error, idempotency_key, remaining_eps, remaining_delta, "
                  "user_id, dataset_id")


def dump_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), default=str)


def load_json(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def budget(eps: str, delta: str) -> Budget:
    return Budget(Decimal(eps), Decimal(delta))


def grant_from_row(row: sqlite3.Row) -> Grant:
    return Grant(user=row["user"], dataset=row["dataset"],
                 initial=budget(row["initial_eps"], row["initial_delta"]),
                 spent=budget(row["spent_eps"], row["spent_delta"]), active=bool(row["active"]),
                 id=row["id"], dataset_id=row["dataset_id"])


def record_from_row(row: sqlite3.Row) -> ArchiveRecord:
    remaining = None
    if row["remaining_eps"] is not None:
        remaining = budget(row["remaining_eps"], row["remaining_delta"])
    return ArchiveRecord(
        id=row["id"], user=row["user"], dataset=row["dataset"], engine=row["engine"],
        request=load_json(row["request"]), cost=budget(row["cost_eps"], row["cost_delta"]),
        status=row["status"], created_at=parse_time(row["created_at"]),
        completed_at=parse_time(row["completed_at"]) if row["completed_at"] else None,
        result=load_json(row["result"]), error=load_json(row["error"]),
        idempotency_key=row["idempotency_key"], remaining=remaining, user_id=row["user_id"],
        dataset_id=row["dataset_id"])


def record_params(r: ArchiveRecord) -> tuple[Any, ...]:
    rem = r.remaining
    return (r.id, r.user, r.dataset, r.engine, dump_json(r.request) or "{}", str(r.cost.epsilon),
            str(r.cost.delta), r.status, format_time(r.created_at),
            format_time(r.completed_at) if r.completed_at else None, dump_json(r.result), dump_json(r.error),
            r.idempotency_key, str(rem.epsilon) if rem else None, str(rem.delta) if rem else None,
            r.user_id, r.dataset_id)


INSERT_RECORD = f"INSERT INTO archive ({RECORD_COLUMNS}) VALUES ({', '.join('?' * 17)})"
