"""Domain objects of the admin state: users, datasets, grants and the query archive.

Stores persist these; the server and the CLI exchange them. Budgets are exact decimals
(:class:`lomas_core.budget.Budget`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lomas_core.budget import Budget
from lomas_core.metadata import Metadata

__all__ = [
    "AdminEvent",
    "ArchiveRecord",
    "DatasetDescription",
    "Grant",
    "NAME_PATTERN",
    "QueryStatus",
    "TokenInfo",
    "User",
    "new_dataset_id",
    "new_grant_id",
    "new_token_id",
    "new_user_id",
    "new_query_id",
    "utcnow",
]

#: User and dataset names: short, URL- and SQL-identifier-safe.
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$"

QueryStatus = Literal["pending", "success", "failed", "released"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_query_id() -> str:
    return uuid.uuid4().hex


def new_user_id() -> str:
    """A user's immutable identity (random; never reused after the user is removed)."""
    return "usr_" + uuid.uuid4().hex[:16]


def new_dataset_id() -> str:
    """A dataset's immutable identity: a removed and re-added name gets a new one."""
    return "ds_" + uuid.uuid4().hex[:16]


def new_grant_id() -> str:
    """A grant's immutable identity (one per user id and dataset id; kept across revoke)."""
    return "grt_" + uuid.uuid4().hex[:16]


def new_token_id() -> str:
    """A token's public id: random, unrelated to the token value (safe to show and log)."""
    return "tok_" + uuid.uuid4().hex[:16]


class User(BaseModel):
    """A researcher or an admin. Identity comes from a token only.

    A ``suspended`` user keeps everything but every request is refused (403 ``suspended``).
    """

    name: str = Field(pattern=NAME_PATTERN)
    is_admin: bool = False
    suspended: bool = False
    #: The immutable identity the store gives the user at creation (``usr_...``); a later user of
    #: the same name gets another one and inherits nothing (archive, keys, spend).
    id: str | None = None

    def same_as(self, other: User) -> bool:
        """Equal apart from the store-given id (for tests and comparisons of exports)."""
        return self.model_dump(exclude={"id"}) == other.model_dump(exclude={"id"})


class TokenInfo(BaseModel):
    """What may be shown about a token: never its value nor its hash."""

    id: str
    user: str
    created_at: datetime | None = None
    expires_at: datetime | None = None
    last_used_at: datetime | None = None

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or utcnow())

    def view(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {"id": self.id, "user": self.user, "created_at": iso(self.created_at),
                "expires_at": iso(self.expires_at), "last_used_at": iso(self.last_used_at),
                "expired": self.expired()}


class DatasetDescription(BaseModel):
    """Where a dataset lives and what is public about it.

    ``options`` belong to the adapter (path, url, bucket/key, format, ``credentials`` naming a
    secret, ...). ``metadata`` may be omitted when ``options`` tell the adapter where to read it.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    adapter: str = "local"
    options: dict[str, Any] = Field(default_factory=dict)
    metadata: Metadata | None = None
    description: str = ""
    #: The immutable identity the store gives the dataset when it is first added (``ds_...``);
    #: set by the store, ignored when sent. Kept when the description is replaced.
    id: str | None = None


class Grant(BaseModel):
    """A user's access to a dataset with its initial and spent budget."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    user: str
    dataset: str
    initial: Budget
    spent: Budget
    #: False once revoked: the grant gives no access but its lifetime ``spent`` is kept for a
    #: later re-grant (unless the admin resets it explicitly).
    active: bool = True
    #: Immutable identities (set by the store): the grant's own, and its dataset's.
    id: str | None = None
    dataset_id: str | None = None

    @property
    def remaining(self) -> Budget:
        return self.initial - self.spent


class ArchiveRecord(BaseModel):
    """One real (non-dummy) query: written ``pending`` in the same transaction as its charge, then
    completed with the result (``success``), the error (``failed``) or refunded (``released``)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: str = Field(default_factory=new_query_id)
    user: str
    dataset: str
    engine: str
    request: dict[str, Any]
    cost: Budget
    status: QueryStatus = "pending"
    created_at: datetime = Field(default_factory=utcnow)
    completed_at: datetime | None = None
    result: Any = None
    error: dict[str, Any] | None = None
    idempotency_key: str | None = None
    #: The identity of the user who ran it (set by the store's ``charge``): archive access,
    #: idempotency keys and refunds follow the id, never the reusable name.
    user_id: str | None = None
    #: The identity of the dataset it ran on (set by the store's ``charge``): a removed and
    #: re-added dataset of the same name has another id.
    dataset_id: str | None = None
    #: Remaining budget right after the charge (set by the store's ``charge``).
    remaining: Budget | None = None

    def public_view(self) -> dict[str, Any]:
        """JSON form returned to researchers and admins."""
        return {
            "id": self.id,
            "user": self.user,
            "dataset": self.dataset,
            "engine": self.engine,
            "request": self.request,
            "epsilon": float(self.cost.epsilon),
            "delta": float(self.cost.delta),
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
            "result": self.result,
            "error": self.error,
        }


class AdminEvent(BaseModel):
    """One entry of the admin audit log: who changed what, when, and the state before and after.

    ``before`` / ``after`` are JSON-safe summaries of admin state (never token values or hashes,
    never private data). Entries are only ever appended.
    """

    id: str = Field(default_factory=lambda: "evt_" + uuid.uuid4().hex[:16])
    at: datetime = Field(default_factory=utcnow)
    actor: str
    action: str
    target: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at.isoformat(), "actor": self.actor, "action": self.action,
                "target": self.target, "before": self.before, "after": self.after}
