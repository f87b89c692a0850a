"""Admin changes, one path for the CLI and the admin API: each change and its audit-log entry.

Every function reads what the change replaces, builds the audit entry (who, what, before, after)
and hands it to the store method that makes the change: the store writes both or neither (see
:mod:`lomas_core.store`). Functions are blocking (the API runs them in worker threads).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lomas_core.admin_log import dataset_summary, event, grant_summary, token_summary, user_summary
from lomas_core.budget import Budget
from lomas_core.errors import NotFound
from lomas_core.models import DatasetDescription, Grant, TokenInfo, User, new_token_id
from lomas_core.store import BudgetStore
from lomas_core.tokens import hash_token, new_token

__all__ = ["add_user", "grant", "import_state", "issue_token", "put_dataset", "remove_dataset",
           "remove_user", "revoke", "revoke_token", "revoke_tokens", "set_budget", "set_suspended"]


# -- users and tokens ------------------------------------------------------------------------------
def add_user(store: BudgetStore, actor: str, user: User) -> User:
    """Create ``user`` (a new id; any id given is ignored); returns it as stored."""
    fresh = user.model_copy(update={"id": None})
    store.add_user(fresh, event=event(actor, "user.add", f"user:{user.name}",
                                      after=user_summary(fresh)))
    return store.get_user(user.name)


def remove_user(store: BudgetStore, actor: str, name: str) -> User:
    """Delete a user with its tokens and grants; returns it as it was."""
    before = store.get_user(name)
    store.remove_user(name, event=event(actor, "user.remove", f"user:{name}", user_summary(before)))
    return before


def set_suspended(store: BudgetStore, actor: str, name: str, suspended: bool) -> User:
    """Suspend or resume a user; returns it as it is now."""
    before = store.get_user(name)
    after = before.model_copy(update={"suspended": suspended})
    store.set_suspended(name, suspended, event=event(
        actor, "user.suspend" if suspended else "user.resume", f"user:{name}",
        user_summary(before), user_summary(after)))
    return after


def issue_token(store: BudgetStore, actor: str, user: str,
                expires_at: datetime | None) -> tuple[str, TokenInfo]:
    """A new token for ``user``: ``(token, info)``; the token is shown once and stored hashed."""
    token = new_token()
    info = TokenInfo(id=new_token_id(), user=user, expires_at=expires_at)
    store.add_token(user, hash_token(token), expires_at=expires_at, token_id=info.id,
                    event=event(actor, "token.issue", f"user:{user}", after=token_summary(info)))
    return token, info


def revoke_token(store: BudgetStore, actor: str, user: str, token_id: str) -> None:
    store.revoke_token(user, token_id, event=event(actor, "token.revoke", f"user:{user}",
                                                   {"id": token_id}))


def revoke_tokens(store: BudgetStore, actor: str, user: str) -> int:
    """Revoke every token of ``user``; returns how many. NotFound for an unknown user."""
    store.get_user(user)
    return store.revoke_tokens(user, event=event(actor, "token.revoke_all", f"user:{user}",
                                                 after={"count": None}))


# -- datasets --------------------------------------------------------------------------------------
def put_dataset(store: BudgetStore, actor: str, description: DatasetDescription, *,
                replace: bool = False) -> DatasetDescription:
    """Add (or with ``replace`` update) a description already checked by its adapter; returns it
    as stored, with its id."""
    try:
        before = store.get_dataset(description.name)
    except NotFound:
        before = None
    given = description.model_copy(update={"id": None})  # ids are the store's to give
    store.put_dataset(given, replace=replace, event=event(
        actor, "dataset.put", f"dataset:{description.name}", dataset_summary(before),
        dataset_summary(given.model_copy(update={"id": before.id if before else None}))))
    return store.get_dataset(description.name)


def remove_dataset(store: BudgetStore, actor: str, name: str) -> DatasetDescription:
    """Delete a dataset and its grants (the archive stays); returns it as it was."""
    before = store.get_dataset(name)
    store.remove_dataset(name, event=event(actor, "dataset.remove", f"dataset:{name}",
                                           dataset_summary(before)))
    return before


# -- grants and budgets ----------------------------------------------------------------------------
def _zero() -> Budget:
    return Budget.of(0, 0)


def grant(store: BudgetStore, actor: str, user: str, dataset: str, initial: Budget, *,
          reset_spent: bool = False) -> Grant:
    """Grant (or grant again) ``user`` access to ``dataset``; returns the active grant."""
    before = store.get_grant(user, dataset, include_revoked=True)
    spent = before.spent if before is not None and not reset_spent else _zero()
    after = Grant(user=user, dataset=dataset, initial=initial, spent=spent,
                  id=before.id if before else None, dataset_id=before.dataset_id if before else None)
    store.grant(user, dataset, initial, reset_spent=reset_spent, event=event(
        actor, "grant.add", f"grant:{user}/{dataset}", grant_summary(before),
        {**(grant_summary(after) or {}), "reset_spent": reset_spent}))
    current = store.get_grant(user, dataset)
    if current is None:  # removed meanwhile by another admin
        raise NotFound(f"user '{user}' has no grant on dataset '{dataset}'")
    return current


def revoke(store: BudgetStore, actor: str, user: str, dataset: str) -> Grant:
    """End a grant's access (its spend is kept); returns the grant as it was."""
    before = store.get_grant(user, dataset)
    if before is None:
        raise NotFound(f"user '{user}' has no grant on dataset '{dataset}'")
    store.revoke(user, dataset, event=event(
        actor, "grant.revoke", f"grant:{user}/{dataset}", grant_summary(before),
        grant_summary(before.model_copy(update={"active": False}))))
    return before


def set_budget(store: BudgetStore, actor: str, user: str, dataset: str, initial: Budget) -> Grant:
    """Change a grant's initial budget (spent is kept); returns the grant as it is now."""
    before = store.get_grant(user, dataset)
    if before is None:
        raise NotFound(f"user '{user}' has no grant on dataset '{dataset}'")
    store.set_initial_budget(user, dataset, initial, event=event(
        actor, "budget.set", f"grant:{user}/{dataset}", grant_summary(before),
        grant_summary(before.model_copy(update={"initial": initial}))))
    current = store.get_grant(user, dataset)
    if current is None:
        raise NotFound(f"user '{user}' has no grant on dataset '{dataset}'")
    return current


# -- whole states ----------------------------------------------------------------------------------
def import_state(store: BudgetStore, actor: str, state: dict[str, Any], source: str) -> dict[str, int]:
    """Load an exported state into an empty store (``lomas admin copy``); returns the counts."""
    counts = {key: len(state.get(key) or []) for key in ("users", "tokens", "datasets", "grants",
                                                          "archive")}
    store.import_state(state, event=event(actor, "state.copy", f"store:{store.name}",
                                          after={"source": source, **counts}))
    return counts
