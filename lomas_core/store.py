"""The budget-store contract: the admin state and the atomic charge.

A store is a class named by an entry point in the group ``lomas.stores``; the config's
``store.name`` picks it and ``store.options`` is validated against its ``Options``; the core builds
it with ``cls.create(options, context)`` (a store overrides ``create`` to open its database).

Rules (checked by :class:`lomas_core.testing.store_contract.StoreContract`, which every
implementation must pass):

- Create a missing or empty store only when ``context.create_store`` (``lomas admin init``);
  otherwise refuse with a ConfigError naming the host or path and mentioning ``lomas admin init``.
- Check-and-charge is one atomic step together with the pending archive record; two concurrent
  charges can never both pass one check; budgets are exact decimals.
- ``recover()`` finishes queries whose process died; ``list_archive_page()`` pages the archive;
  ``self._step(name)`` is called between backend operations of ``charge``/``complete``/``release``.
- Every method is blocking (the server calls them from worker threads) and safe to call from many
  threads and from several processes sharing the same backing database. Raise
  :class:`lomas_core.errors.StoreUnavailable` when the backend cannot be reached,
  :class:`~lomas_core.errors.NotFound` / :class:`~lomas_core.errors.Conflict` for admin mistakes.

Hooks a store may use: none; the core calls it.
"""

from __future__ import annotations

import base64
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lomas_core.budget import Budget
from lomas_core.models import (
    AdminEvent,
    ArchiveRecord,
    DatasetDescription,
    Grant,
    QueryStatus,
    TokenInfo,
    User,
)
from lomas_core.plugin_base import PluginBase

__all__ = ["MAX_PAGE", "ArchiveFilter", "ArchivePage", "BudgetStore", "decode_cursor",
           "encode_cursor"]

#: The largest page of archive records one call returns.
MAX_PAGE = 1000


@dataclass(frozen=True)
class ArchiveFilter:
    """Which archive records to list (every field optional; times compare ``created_at``)."""

    user: str | None = None
    dataset: str | None = None
    #: The records of one identity (``user`` means the current holder of that name).
    user_id: str | None = None
    status: str | None = None
    engine: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, record: ArchiveRecord) -> bool:
        return ((self.user is None or record.user == self.user)
                and (self.user_id is None or record.user_id == self.user_id)
                and (self.dataset is None or record.dataset == self.dataset)
                and (self.status is None or record.status == self.status)
                and (self.engine is None or record.engine == self.engine)
                and (self.since is None or record.created_at >= self.since)
                and (self.until is None or record.created_at < self.until))


@dataclass
class ArchivePage:
    """One page of archive records, oldest first; ``next_cursor`` is None on the last page."""

    records: list[ArchiveRecord] = field(default_factory=list)
    next_cursor: str | None = None


def encode_cursor(position: list[Any]) -> str:
    """An opaque cursor for a store's position (JSON-safe values)."""
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode()


def decode_cursor(cursor: str) -> list[Any]:
    """The position in a cursor; InvalidRequest when it was not made by :func:`encode_cursor`."""
    from lomas_core.errors import InvalidRequest

    try:
        position = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, UnicodeError):
        raise InvalidRequest("invalid cursor: pass back the next_cursor of a previous page") from None
    if not isinstance(position, list):
        raise InvalidRequest("invalid cursor: pass back the next_cursor of a previous page")
    return position


class BudgetStore(PluginBase, ABC):
    """Users, tokens, datasets, grants with budgets, and the query archive."""

    #: Test hook for crash-point tests: when set, stores call it with a step name between the
    #: backend operations of :meth:`charge`, :meth:`complete` and :meth:`release`. A hook that
    #: raises a BaseException simulates the process dying at that point (nothing after it runs,
    #: an open transaction is rolled back).
    fault_hook: Callable[[str], None] | None = None

    def _step(self, name: str) -> None:
        hook = self.fault_hook
        if hook is not None:
            hook(name)

    # -- users and tokens -------------------------------------------------------------------------
    @abstractmethod
    def add_user(self, user: User, *, event: AdminEvent | None = None) -> None:
        """Create a user (with ``user.id`` when given, else a new id). Conflict if the name is
        taken."""

    @abstractmethod
    def get_user(self, name: str) -> User:
        """The user; NotFound if absent."""

    @abstractmethod
    def list_users(self) -> list[User]:
        """All users, sorted by name."""

    @abstractmethod
    def remove_user(self, name: str, *, event: AdminEvent | None = None) -> None:
        """Delete a user with its tokens and grants (the archive stays). NotFound if absent."""

    @abstractmethod
    def set_suspended(self, name: str, suspended: bool, *,
                      event: AdminEvent | None = None) -> User:
        """Suspend or resume a user; returns the user as it was before. NotFound if absent.

        A suspended user's tokens stay but authenticate nobody (403 ``suspended``), and
        :meth:`charge` refuses it with :class:`~lomas_core.errors.Suspended`.
        """

    @abstractmethod
    def add_token(self, user: str, token_hash: str, *, expires_at: datetime | None = None,
                  token_id: str | None = None, event: AdminEvent | None = None) -> str:
        """Store a token's hash for ``user`` (never the token) with an optional expiry.

        Returns the token's id (``token_id``, else a new one). NotFound if the user is
        absent; Conflict if the hash is known.
        """

    @abstractmethod
    def list_tokens(self, user: str) -> list[TokenInfo]:
        """The tokens of ``user`` (ids and times, never hashes), oldest first. NotFound if absent."""

    @abstractmethod
    def revoke_token(self, user: str, token_id: str, *, event: AdminEvent | None = None) -> None:
        """Delete one token of ``user``. NotFound if the user has no token with that id."""

    @abstractmethod
    def revoke_tokens(self, user: str, *, event: AdminEvent | None = None) -> int:
        """Delete every token of ``user``; returns how many were deleted."""

    @abstractmethod
    def user_for_token(self, token_hash: str) -> User | None:
        """The user owning this token hash, or None (unknown, revoked or expired).

        Records the token's last use (stores may coarsen it to about a minute).
        """

    # -- datasets -----------------------------------------------------------------------------------
    @abstractmethod
    def put_dataset(self, dataset: DatasetDescription, *, replace: bool = False,
                    event: AdminEvent | None = None) -> None:
        """Create (or with ``replace`` update) a dataset description. Conflict if it exists.

        A new dataset gets ``dataset.id`` when given, else a new id; a replaced one keeps its id.
        """

    @abstractmethod
    def get_dataset(self, name: str) -> DatasetDescription:
        """The description; NotFound if absent."""

    @abstractmethod
    def list_datasets(self) -> list[DatasetDescription]:
        """All datasets, sorted by name."""

    @abstractmethod
    def remove_dataset(self, name: str, *, event: AdminEvent | None = None) -> None:
        """Delete a dataset and its grants (the archive stays). NotFound if absent."""

    # -- grants and budgets ------------------------------------------------------------------------
    @abstractmethod
    def grant(self, user: str, dataset: str, initial: Budget, *, reset_spent: bool = False,
              event: AdminEvent | None = None) -> None:
        """Give ``user`` access to ``dataset`` with an initial budget.

        The lifetime spend of the pair survives :meth:`revoke`: a re-grant starts from what was
        spent before, unless ``reset_spent`` (which keeps only the cost of queries still running,
        so their refund can never take spent below zero). NotFound if the user or dataset is
        absent; Conflict if an active grant exists. The grant keeps its id across revoke and
        re-grant.
        """

    @abstractmethod
    def revoke(self, user: str, dataset: str, *, event: AdminEvent | None = None) -> None:
        """End the grant's access, keeping its spent budget. NotFound if there is no active grant."""

    @abstractmethod
    def set_initial_budget(self, user: str, dataset: str, initial: Budget, *,
                           event: AdminEvent | None = None) -> None:
        """Change the initial budget of an existing grant (spent is kept). NotFound if no grant."""

    @abstractmethod
    def get_grant(self, user: str, dataset: str, *, include_revoked: bool = False) -> Grant | None:
        """The grant with initial and spent budgets, or None when the user has no access
        (with ``include_revoked``, also a revoked grant, ``active`` false, with its spend)."""

    @abstractmethod
    def list_grants(self, user: str | None = None) -> list[Grant]:
        """Grants, optionally of one user, sorted by (user, dataset)."""

    # -- the charge and the archive ----------------------------------------------------------------
    @abstractmethod
    def charge(self, record: ArchiveRecord) -> Budget:
        """Atomically charge ``record.cost`` to (record.user, record.dataset) and archive ``record``
        as pending, in one transaction / one document operation.

        The check that the cost fits what remains and the update are one atomic step: two
        concurrent charges can never both pass one check. Never read-then-write outside that step.

        Returns:
            The remaining budget right after the charge (also stored as ``record.remaining``).
        Raises:
            Suspended: the user is suspended (checked in the same atomic step); nothing changed.
            AccessDenied: no grant for (user, dataset).
            BudgetExceeded: the cost does not fit; nothing changed.
            IdempotencyConflict: ``record.idempotency_key`` is already used by this user.
        """

    @abstractmethod
    def complete(self, query_id: str, status: QueryStatus, *, result: Any = None,
                 error: dict[str, Any] | None = None) -> None:
        """Mark a pending record ``success`` or ``failed`` with its result or error."""

    @abstractmethod
    def release(self, query_id: str) -> None:
        """Refund a pending record's charge and mark it ``released``, atomically.

        Only for failures before any private data was read. A record that is not pending is left
        unchanged (releasing twice never refunds twice).
        """

    @abstractmethod
    def get_record(self, query_id: str) -> ArchiveRecord:
        """One archive record; NotFound if absent."""

    @abstractmethod
    def find_by_idempotency_key(self, user: str, key: str) -> ArchiveRecord | None:
        """The record the current user named ``user`` created with this ``Idempotency-Key``, or
        None. Keys belong to the user's id: a later user of a removed name never sees them."""

    @abstractmethod
    def list_archive(self, user: str | None = None, dataset: str | None = None) -> list[ArchiveRecord]:
        """Archive records, oldest first, optionally filtered.

        ``user`` selects the records of the current user of that name (by id); when no user has
        that name any more, the records archived under it.
        """

    def list_archive_page(self, where: ArchiveFilter, *, cursor: str | None = None,
                          limit: int = 100) -> ArchivePage:
        """One page of the archive records matching ``where``, in a stable order.

        ``cursor`` is the ``next_cursor`` of the previous page. Stores should override this with
        a query on their indexes; the default filters :meth:`list_archive`.
        """
        limit = max(1, min(limit, MAX_PAGE))
        records = [r for r in self.list_archive(where.user, where.dataset) if where.matches(r)]
        start = 0
        if cursor is not None:
            position = decode_cursor(cursor)
            ids = [r.id for r in records]
            start = ids.index(position[0]) + 1 if position and position[0] in ids else len(ids)
        page = records[start:start + limit]
        more = start + limit < len(records)
        return ArchivePage(page, encode_cursor([page[-1].id]) if more and page else None)

    @abstractmethod
    def pending_records(self) -> list[ArchiveRecord]:
        """Records still pending (left by a crash); for recovery and audit."""

    # -- the admin audit log -------------------------------------------------------------------------
    # Every admin method above takes ``event``: the audit entry of that change. The store writes
    # it so that the log holds it if and only if the change happened (one transaction, or a
    # pending entry reconciled with the change), also when the process dies in between.
    # Ids the store gives (user, dataset, grant) are added to ``event.after`` when it is a dict.

    @abstractmethod
    def add_admin_event(self, event: AdminEvent) -> None:
        """Append one entry that goes with no change (a start-up notice, for instance)."""

    def reconcile_admin_log(self, grace_seconds: float | None = None) -> int:
        """Settle audit entries a crash left between a change and its confirmation (older than
        ``grace_seconds``, default the store's recovery grace); returns how many were kept.
        Stores that write the entry in the change's own transaction have nothing to do."""
        return 0

    @abstractmethod
    def list_admin_events(self, *, cursor: str | None = None,
                          limit: int = 100) -> tuple[list[AdminEvent], str | None]:
        """Audit-log entries, oldest first, a page at a time: ``(entries, next_cursor)``."""

    # -- whole-state copy and lifecycle ------------------------------------------------------------
    @abstractmethod
    def export_state(self) -> dict[str, Any]:
        """Everything as JSON-safe data (users, token hashes, datasets, grants, archive).

        The format is shared by every store so that ``lomas admin copy`` can move state between
        stores. Decimals are strings.
        """

    @abstractmethod
    def import_state(self, state: dict[str, Any], *, event: AdminEvent | None = None) -> None:
        """Load what :meth:`export_state` produced into an empty store. Conflict if not empty."""

    # -- owners of pending charges (see lomas_core.stores.lease) -----------------------------------
    #: The id under which this store object owns the charges it makes; None when the store does
    #: not track owners. Set at start-up; a store may register anew after being declared dead.
    owner_id: str | None = None

    def recover(self, grace_seconds: float | None = None) -> Any:
        """Finish what dead processes left: their pending records become final.

        A pending record whose owner is dead (known dead, or its lease expired) stays charged and
        becomes ``failed`` with the error code ``charged_failure`` (its request kept, so a same-key
        retry replays that outcome); a charge without a record never exists. A record whose owner
        lives is never touched, however old. ``grace_seconds`` (default: the configured
        ``recovery_grace_seconds``) applies only to records with no registered owner (written by
        older versions, or left by an owner that closed its store cleanly). Stores run this at
        start-up; the default does nothing.
        """
        return None

    def heartbeat(self) -> int:
        """Renew this process's owner lease, then resolve dead owners' pending records (as
        :meth:`recover`); returns how many were resolved.

        Stores call it from a background thread once they have charged anything, and resolve a
        pending record a same-key retry finds (:meth:`find_by_idempotency_key`) at once when its
        owner is dead. The default does nothing.
        """
        return 0

    def backup(self, target: Any) -> str:
        """Write a consistent copy of the store to ``target`` while it serves; returns a summary.

        Stores whose backend has its own tools raise InvalidRequest explaining them.
        """
        from lomas_core.errors import InvalidRequest

        raise InvalidRequest(f"the {self.name or 'configured'} store has no built-in backup; "
                             "use its database's own tools")

    def ping(self) -> None:
        """Raise StoreUnavailable when the backend is unreachable. Used by ``/health``."""

    def close(self) -> None:
        """Release connections. Called once at shutdown."""
