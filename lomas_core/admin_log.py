"""The admin audit log: every admin change, who made it, when, and the state before and after.

The CLI and the admin API make every change through :mod:`lomas_core.admin_ops`, which builds the
entry with :func:`event` and hands it to the store method making the change: the store writes both
or neither (:mod:`lomas_core.store`). Summaries hold admin state only: names, ids, roles, budgets,
token ids and expiry, never token values, hashes or private data.
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Mapping
from typing import Any

from lomas_core.models import AdminEvent, DatasetDescription, Grant, TokenInfo, User
from lomas_core.store import BudgetStore

log = logging.getLogger("lomas.admin")

__all__ = ["api_actor", "cli_actor", "dataset_summary", "event", "grant_summary", "note_ids",
           "record", "startup_notices", "token_summary", "user_summary"]


def cli_actor() -> str:
    """Who runs ``lomas admin`` on this machine (the OS account)."""
    try:
        name = getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        name = "unknown"
    return f"cli:{name}"


def api_actor(admin: User) -> str:
    """The admin calling the admin API, by name and immutable id."""
    return f"api:{admin.name}" + (f" ({admin.id})" if admin.id else "")


def user_summary(user: User | None) -> dict[str, Any] | None:
    return None if user is None else user.model_dump()


def grant_summary(grant: Grant | None) -> dict[str, Any] | None:
    if grant is None:
        return None
    return {"id": grant.id, "dataset_id": grant.dataset_id, "initial": grant.initial.as_strings(),
            "spent": grant.spent.as_strings(), "active": grant.active}


def token_summary(token: TokenInfo) -> dict[str, Any]:
    return {"id": token.id, "expires_at": token.expires_at.isoformat() if token.expires_at else None}


def dataset_summary(dataset: DatasetDescription | None) -> dict[str, Any] | None:
    """Where a dataset lives (adapter and option names; values may name secrets or paths)."""
    if dataset is None:
        return None
    return {"id": dataset.id, "adapter": dataset.adapter, "options": sorted(dataset.options),
            "has_metadata": dataset.metadata is not None}


def event(actor: str, action: str, target: str, before: dict[str, Any] | None = None,
          after: dict[str, Any] | None = None) -> AdminEvent:
    """An audit entry (``action`` like ``user.add``, ``target`` like ``user:eve``) to hand to
    the store method that makes the change."""
    return AdminEvent(actor=actor, action=action, target=target, before=before, after=after)


def note_ids(entry: AdminEvent | None, **ids: str | None) -> None:
    """Fill ids the store just gave (``id=``, ``dataset_id=``) into ``entry.after`` (stores call
    this before writing the entry; ids already there are kept)."""
    if entry is None or entry.after is None:
        return
    for key, value in ids.items():
        if entry.after.get(key) is None and value is not None:
            entry.after[key] = value


def record(store: BudgetStore, actor: str, action: str, target: str,
           before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> None:
    """Append an entry that goes with no store change (start-up notices)."""
    store.add_admin_event(event(actor, action, target, before, after))


def startup_notices(store: BudgetStore, adapters: Mapping[str, Any]) -> int:
    """Say in the admin log (and the server log) what an admin must know about how adapters
    were configured (``startup_notices`` of each), once per server start; returns how many."""
    count = 0
    for name, adapter in sorted(adapters.items()):
        for notice in getattr(adapter, "startup_notices", None) or []:
            log.warning("%s", notice)
            record(store, "server", "adapter.notice", f"adapter:{name}", after={"notice": notice})
            count += 1
    return count
