"""The store-independent whole-state format used by ``export_state`` / ``import_state``.

Every store exports the same JSON-safe mapping so that ``lomas admin copy`` can move state between
stores::

    {
      "users":    [{"name": "alice", "is_admin": false, "suspended": false}, ...],
      "tokens":   [{"user": "alice", "hash": "<sha256 hex>", "id": "tok_...", "created_at",
                    "expires_at", "last_used_at"}, ...],   # times optional (null)
      "datasets": [<DatasetDescription as JSON>, ...],
      "grants":   [{"user", "dataset", "initial": {"epsilon": "1.0", "delta": "0"},
                    "spent": {"epsilon": "0.1", "delta": "0"}}, ...],
      "archive":  [<record, see record_to_state>, ...]   # oldest first
    }

Decimals are strings, timestamps fixed-width ISO-8601 UTC strings. :func:`parse_state` validates
such a mapping into model objects (raising :class:`~lomas_core.errors.InvalidRequest` with the
offending entry) so a store's ``import_state`` only has to write them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from lomas_core.budget import Budget, to_decimal
from lomas_core.errors import InvalidRequest
from lomas_core.models import ArchiveRecord, DatasetDescription, Grant, User, new_token_id
from lomas_core.validation import validation_message

__all__ = [
    "STATE_KEYS",
    "ParsedState",
    "Token",
    "budget_from_state",
    "budget_to_state",
    "build_state",
    "format_time",
    "grant_from_state",
    "grant_to_state",
    "parse_state",
    "parse_time",
    "record_from_state",
    "record_to_state",
    "token_from_state",
]

#: Top-level keys of an exported state, in export order.
STATE_KEYS: tuple[str, ...] = ("users", "tokens", "datasets", "grants", "archive")
_STATUSES = ("pending", "success", "failed", "released")


@dataclass(frozen=True)
class Token:
    """A stored token hash, its owner, its public id and its times (ISO text or None)."""

    user: str
    hash: str
    id: str | None = None
    created_at: str | None = None
    expires_at: str | None = None
    last_used_at: str | None = None

    def to_state(self) -> dict[str, Any]:
        return {"user": self.user, "hash": self.hash, "id": self.id, "created_at": self.created_at,
                "expires_at": self.expires_at, "last_used_at": self.last_used_at}


def token_from_state(value: dict[str, Any]) -> Token:
    def when(key: str) -> str | None:
        raw = value.get(key)
        return format_time(parse_time(raw)) if raw else None

    tid = value.get("id")
    return Token(user=str(value["user"]), hash=str(value["hash"]),
                 id=str(tid) if tid else new_token_id(), created_at=when("created_at"),
                 expires_at=when("expires_at"), last_used_at=when("last_used_at"))


@dataclass
class ParsedState:
    """A validated exported state, ready to be written by a store."""

    users: list[User] = field(default_factory=list)
    tokens: list[Token] = field(default_factory=list)
    datasets: list[DatasetDescription] = field(default_factory=list)
    grants: list[Grant] = field(default_factory=list)
    archive: list[ArchiveRecord] = field(default_factory=list)


def format_time(value: datetime) -> str:
    """Fixed-width UTC text (sorts like the instant it names; round-trips to the microsecond)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def parse_time(value: Any) -> datetime:
    """Inverse of :func:`format_time`; also accepts any ISO-8601 text or a datetime."""
    if isinstance(value, datetime):
        result = value
    else:
        result = datetime.fromisoformat(str(value))
    return result if result.tzinfo else result.replace(tzinfo=UTC)


def budget_to_state(budget: Budget) -> dict[str, str]:
    return budget.as_strings()


def budget_from_state(value: Any) -> Budget:
    if not isinstance(value, dict):
        raise ValueError("a budget must be an object with 'epsilon' and 'delta'")
    return Budget(to_decimal(value["epsilon"]), to_decimal(value.get("delta", "0")))


def grant_to_state(grant: Grant) -> dict[str, Any]:
    return {"user": grant.user, "dataset": grant.dataset,
            "initial": budget_to_state(grant.initial), "spent": budget_to_state(grant.spent),
            "active": grant.active, "id": grant.id, "dataset_id": grant.dataset_id}


def grant_from_state(value: dict[str, Any]) -> Grant:
    return Grant(user=str(value["user"]), dataset=str(value["dataset"]),
                 initial=budget_from_state(value["initial"]), spent=budget_from_state(value["spent"]),
                 active=bool(value.get("active", True)),
                 id=str(value["id"]) if value.get("id") else None,
                 dataset_id=str(value["dataset_id"]) if value.get("dataset_id") else None)


def record_to_state(record: ArchiveRecord) -> dict[str, Any]:
    """An archive record as JSON-safe data (exact decimals as strings)."""
    return {
        "id": record.id,
        "user": record.user,
        "dataset": record.dataset,
        "engine": record.engine,
        "request": record.request,
        "cost": budget_to_state(record.cost),
        "status": record.status,
        "created_at": format_time(record.created_at),
        "completed_at": format_time(record.completed_at) if record.completed_at else None,
        "result": record.result,
        "error": record.error,
        "idempotency_key": record.idempotency_key,
        "remaining": budget_to_state(record.remaining) if record.remaining is not None else None,
        "user_id": record.user_id,
        "dataset_id": record.dataset_id,
    }


def record_from_state(value: dict[str, Any]) -> ArchiveRecord:
    status = value.get("status", "pending")
    if status not in _STATUSES:
        raise ValueError(f"unknown status {status!r}")
    request = value.get("request") or {}
    if not isinstance(request, dict):
        raise ValueError("'request' must be an object")
    error = value.get("error")
    if error is not None and not isinstance(error, dict):
        raise ValueError("'error' must be an object or null")
    completed = value.get("completed_at")
    remaining = value.get("remaining")
    key = value.get("idempotency_key")
    return ArchiveRecord(
        id=str(value["id"]), user=str(value["user"]), dataset=str(value["dataset"]),
        engine=str(value["engine"]), request=request, cost=budget_from_state(value["cost"]),
        status=status, created_at=parse_time(value["created_at"]),
        completed_at=parse_time(completed) if completed else None,
        result=value.get("result"), error=error,
        idempotency_key=str(key) if key is not None else None,
        remaining=budget_from_state(remaining) if remaining is not None else None,
        user_id=str(value["user_id"]) if value.get("user_id") else None,
        dataset_id=str(value["dataset_id"]) if value.get("dataset_id") else None,
    )


def build_state(users: Iterable[User], tokens: Iterable[Token],
                datasets: Iterable[DatasetDescription], grants: Iterable[Grant],
                archive: Iterable[ArchiveRecord]) -> dict[str, Any]:
    """The exported mapping from model objects (archive oldest first)."""
    return {
        "users": [{"name": u.name, "is_admin": u.is_admin, "suspended": u.suspended, "id": u.id}
                  for u in users],
        "tokens": [t.to_state() for t in tokens],
        "datasets": [d.model_dump(mode="json") for d in datasets],
        "grants": [grant_to_state(g) for g in grants],
        "archive": [record_to_state(r) for r in archive],
    }


def _entries(state: dict[str, Any], key: str) -> list[Any]:
    value = state.get(key, [])
    if not isinstance(value, list):
        raise InvalidRequest(f"state['{key}'] must be a list")
    return value


def parse_state(state: Any) -> ParsedState:
    """Validate an exported state. InvalidRequest names the first bad entry.

    Also checks references: tokens and grants name known users (and datasets), ids are unique.
    """
    if not isinstance(state, dict):
        raise InvalidRequest("a state must be a mapping")
    unknown = set(state) - set(STATE_KEYS)
    if unknown:
        raise InvalidRequest(f"unknown state keys: {', '.join(sorted(map(str, unknown)))}")
    parsed = ParsedState()
    converters: dict[str, Any] = {
        "users": lambda v: User.model_validate(v),
        "tokens": token_from_state,
        "datasets": lambda v: DatasetDescription.model_validate(v),
        "grants": grant_from_state,
        "archive": record_from_state,
    }
    for key in STATE_KEYS:
        target: list[Any] = getattr(parsed, key)
        for index, entry in enumerate(_entries(state, key)):
            try:
                if not isinstance(entry, dict):
                    raise ValueError("must be an object")
                target.append(converters[key](entry))
            except (KeyError, TypeError, ValueError, ValidationError, ArithmeticError) as exc:
                reason = f"missing field {exc}" if isinstance(exc, KeyError) else _short(exc)
                raise InvalidRequest(f"state['{key}'][{index}] is invalid: {reason}") from None
    _check_references(parsed)
    return parsed


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return validation_message(exc, limit=1, default="")
    return str(exc)


def _unique(values: Iterable[Any], what: str) -> None:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise InvalidRequest(f"duplicate {what} in state: {value}")
        seen.add(value)


def _check_references(parsed: ParsedState) -> None:
    users = {u.name for u in parsed.users}
    datasets = {d.name for d in parsed.datasets}
    _unique((u.name for u in parsed.users), "user")
    _unique((d.name for d in parsed.datasets), "dataset")
    _unique((t.hash for t in parsed.tokens), "token hash")
    _unique((t.id for t in parsed.tokens), "token id")
    _unique(((g.user, g.dataset) for g in parsed.grants), "grant")
    _unique((r.id for r in parsed.archive), "archive id")
    _unique((u.id for u in parsed.users if u.id is not None), "user id")
    _unique(((r.user_id or r.user, r.idempotency_key) for r in parsed.archive
             if r.idempotency_key is not None), "idempotency key")
    for token in parsed.tokens:
        if token.user not in users:
            raise InvalidRequest(f"a token belongs to unknown user '{token.user}'")
    for grant in parsed.grants:
        if grant.user not in users or grant.dataset not in datasets:
            raise InvalidRequest(f"grant ({grant.user}, {grant.dataset}) names an unknown user or dataset")
