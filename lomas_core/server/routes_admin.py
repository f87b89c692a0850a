"""Admin endpoints under ``/v1/admin`` (admin role; see docs/api.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from lomas_core import admin_log
from lomas_core.admin_input import check_description, grant_budget
from lomas_core.admin_log import api_actor, dataset_summary, grant_summary, token_summary, user_summary
from lomas_core.budget import Budget
from lomas_core.errors import InvalidRequest, NotFound
from lomas_core.models import DatasetDescription, Grant, TokenInfo, User
from lomas_core.plugins import installed_plugins
from lomas_core.server.auth import admin_user
from lomas_core.server.schemas import AdminArchiveQuery, BudgetBody, GrantRequest, UserRequest
from lomas_core.server.state import ServerState, get_state
from lomas_core.store import ArchiveFilter
from lomas_core.tokens import expiry, hash_token, new_token

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(admin_user)])

StateDep = Annotated[ServerState, Depends(get_state)]
AdminDep = Annotated[User, Depends(admin_user)]


async def _log(state: ServerState, admin: User, action: str, target: str,
               before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> None:
    """Append an admin audit entry for a change that just succeeded."""
    await run_in_threadpool(admin_log.record, state.store, api_actor(admin), action, target, before,
                            after)


def _grant_view(grant: Grant) -> dict[str, Any]:
    return {"user": grant.user, "dataset": grant.dataset, "initial": grant.initial.as_floats(),
            "spent": grant.spent.as_floats(), "remaining": grant.remaining.as_floats()}


def _budget(body: BudgetBody) -> Budget:
    return grant_budget(body.epsilon, body.delta)  # the CLI's rule too


# -- plugins ---------------------------------------------------------------------------------------
@router.get("/plugins", summary="Installed plugins and whether they are enabled and loaded")
async def list_plugins(state: StateDep) -> dict[str, Any]:
    loaded = {"engine": set(state.plugins.engines), "adapter": set(state.plugins.adapters),
              "store": {state.config.store.name}}
    infos = await run_in_threadpool(installed_plugins, state.config)
    return {"plugins": [{**info.as_dict(), "loaded": info.name in loaded.get(info.kind, set())}
                        for info in infos]}


# -- users and tokens ------------------------------------------------------------------------------
@router.get("/users", summary="All users")
async def list_users(state: StateDep) -> dict[str, Any]:
    users = await run_in_threadpool(state.store.list_users)
    return {"users": [u.model_dump() for u in users]}


@router.post("/users", status_code=201, summary="Create a user")
async def add_user(body: UserRequest, state: StateDep, admin: AdminDep) -> dict[str, Any]:
    await run_in_threadpool(state.store.add_user, User(name=body.name, is_admin=body.is_admin))
    user = await run_in_threadpool(state.store.get_user, body.name)
    await _log(state, admin, "user.add", f"user:{body.name}", after=user_summary(user))
    return user.model_dump()


@router.delete("/users/{user}", summary="Delete a user, its tokens and grants (its id is never reused)")
async def remove_user(user: str, state: StateDep, admin: AdminDep) -> dict[str, Any]:
    before = await run_in_threadpool(state.store.get_user, user)
    await run_in_threadpool(state.store.remove_user, user)
    await _log(state, admin, "user.remove", f"user:{user}", user_summary(before))
    return {"deleted": user}


@router.post("/users/{user}/suspend", summary="Suspend a user (403 suspended, nothing charged)")
async def suspend_user(user: str, state: StateDep, admin: AdminDep) -> dict[str, Any]:
    before = await run_in_threadpool(state.store.set_suspended, user, True)
    after = await run_in_threadpool(state.store.get_user, user)
    await _log(state, admin, "user.suspend", f"user:{user}", user_summary(before), user_summary(after))
    return after.model_dump()


@router.post("/users/{user}/resume", summary="Lift a user's suspension")
async def resume_user(user: str, state: StateDep, admin: AdminDep) -> dict[str, Any]:
    before = await run_in_threadpool(state.store.set_suspended, user, False)
    after = await run_in_threadpool(state.store.get_user, user)
    await _log(state, admin, "user.resume", f"user:{user}", user_summary(before), user_summary(after))
    return after.model_dump()


@router.post("/users/{user}/tokens", status_code=201, summary="Issue a token (shown once)")
async def add_token(user: str, state: StateDep, admin: AdminDep,
                    expires: Annotated[str | None, Query(max_length=40, description=(
                        "expiry: a duration (90d, 12h, 30m, 2w) or an ISO date/time"))] = None,
                    ) -> dict[str, Any]:
    try:
        expires_at = expiry(expires)
    except ValueError as exc:
        raise InvalidRequest(f"invalid expires: {exc}") from None
    token = new_token()
    token_id = await run_in_threadpool(
        lambda: state.store.add_token(user, hash_token(token), expires_at=expires_at))
    await _log(state, admin, "token.issue", f"user:{user}",
               after=token_summary(TokenInfo(id=token_id, user=user, expires_at=expires_at)))
    return {"token": token, "id": token_id,
            "expires_at": expires_at.isoformat() if expires_at else None}


@router.get("/users/{user}/tokens", summary="A user's tokens: ids and times, never values")
async def list_tokens(user: str, state: StateDep) -> dict[str, Any]:
    tokens = await run_in_threadpool(state.store.list_tokens, user)
    return {"tokens": [t.view() for t in tokens]}


@router.delete("/users/{user}/tokens/{token_id}", summary="Revoke one token by its id")
async def revoke_token(user: str, token_id: str, state: StateDep, admin: AdminDep) -> dict[str, Any]:
    await run_in_threadpool(state.store.revoke_token, user, token_id)
    await _log(state, admin, "token.revoke", f"user:{user}", {"id": token_id})
    return {"revoked": 1, "id": token_id}


@router.delete("/users/{user}/tokens", summary="Revoke every token of a user")
async def revoke_tokens(user: str, state: StateDep, admin: AdminDep) -> dict[str, Any]:
    await run_in_threadpool(state.store.get_user, user)  # NotFound for unknown users
    count = await run_in_threadpool(state.store.revoke_tokens, user)
    await _log(state, admin, "token.revoke_all", f"user:{user}", {"count": count})
    return {"revoked": count}


# -- datasets --------------------------------------------------------------------------------------
@router.get("/datasets", summary="All dataset descriptions")
async def list_datasets(state: StateDep) -> dict[str, Any]:
    datasets = await run_in_threadpool(state.store.list_datasets)
    return {"datasets": [d.model_dump(mode="json") for d in datasets]}


@router.post("/datasets", status_code=201, summary="Add (or with ?replace=true update) a dataset")
async def add_dataset(body: DatasetDescription, state: StateDep, admin: AdminDep,
                      replace: bool = False) -> dict[str, Any]:
    adapter = state.plugins.adapters.get(body.adapter)
    if adapter is None:
        enabled = ", ".join(sorted(state.plugins.adapters)) or "none"
        raise InvalidRequest(f"adapter '{body.adapter}' is not enabled; enabled: {enabled}")
    await run_in_threadpool(check_description, body, adapter)  # the CLI's checks too
    try:
        before = await run_in_threadpool(state.store.get_dataset, body.name)
    except NotFound:
        before = None
    await run_in_threadpool(lambda: state.store.put_dataset(body, replace=replace))
    state.forget(body.name)
    await _log(state, admin, "dataset.put", f"dataset:{body.name}", dataset_summary(before),
               dataset_summary(body))
    return body.model_dump(mode="json")


@router.get("/datasets/{name}", summary="One dataset description")
async def get_dataset(name: str, state: StateDep) -> dict[str, Any]:
    description = await run_in_threadpool(state.store.get_dataset, name)
    return description.model_dump(mode="json")


@router.delete("/datasets/{name}", summary="Remove a dataset and its grants")
async def remove_dataset(name: str, state: StateDep, admin: AdminDep) -> dict[str, Any]:
    before = await run_in_threadpool(state.store.get_dataset, name)
    await run_in_threadpool(state.store.remove_dataset, name)
    state.forget(name)
    await _log(state, admin, "dataset.remove", f"dataset:{name}", dataset_summary(before))
    return {"deleted": name}


# -- grants ----------------------------------------------------------------------------------------
@router.get("/grants", summary="Grants, optionally of one user")
async def list_grants(state: StateDep, user: str | None = None) -> dict[str, Any]:
    grants = await run_in_threadpool(state.store.list_grants, user)
    return {"grants": [_grant_view(g) for g in grants]}


@router.post("/grants", status_code=201, summary="Grant a user access to a dataset with a budget")
async def add_grant(body: GrantRequest, state: StateDep, admin: AdminDep) -> dict[str, Any]:
    before = await run_in_threadpool(
        lambda: state.store.get_grant(body.user, body.dataset, include_revoked=True))
    await run_in_threadpool(lambda: state.store.grant(body.user, body.dataset, _budget(body),
                                                      reset_spent=body.reset_spent))
    grant = await run_in_threadpool(state.store.get_grant, body.user, body.dataset)
    assert grant is not None
    await _log(state, admin, "grant.add", f"grant:{body.user}/{body.dataset}", grant_summary(before),
               {**(grant_summary(grant) or {}), "reset_spent": body.reset_spent})
    return _grant_view(grant)


@router.put("/grants/{user}/{dataset}", summary="Change a grant's initial budget")
async def set_grant(user: str, dataset: str, body: BudgetBody, state: StateDep,
                    admin: AdminDep) -> dict[str, Any]:
    before = await run_in_threadpool(state.store.get_grant, user, dataset)
    await run_in_threadpool(state.store.set_initial_budget, user, dataset, _budget(body))
    grant = await run_in_threadpool(state.store.get_grant, user, dataset)
    assert grant is not None
    await _log(state, admin, "budget.set", f"grant:{user}/{dataset}", grant_summary(before),
               grant_summary(grant))
    return _grant_view(grant)


@router.delete("/grants/{user}/{dataset}", summary="Revoke a grant (its spent budget is kept)")
async def remove_grant(user: str, dataset: str, state: StateDep, admin: AdminDep) -> dict[str, Any]:
    before = await run_in_threadpool(state.store.get_grant, user, dataset)
    await run_in_threadpool(state.store.revoke, user, dataset)
    after = await run_in_threadpool(
        lambda: state.store.get_grant(user, dataset, include_revoked=True))
    await _log(state, admin, "grant.revoke", f"grant:{user}/{dataset}", grant_summary(before),
               grant_summary(after))
    return {"deleted": {"user": user, "dataset": dataset}}


# -- archive ---------------------------------------------------------------------------------------
@router.get("/archive", summary="Archived queries, filtered, oldest first, a page at a time")
async def list_archive(state: StateDep,
                       params: Annotated[AdminArchiveQuery, Query()]) -> dict[str, Any]:
    """Pass ``next_cursor`` back as ``cursor`` for the next page (null on the last one)."""
    where = ArchiveFilter(user=params.user, dataset=params.dataset, status=params.status,
                          engine=params.engine, since=params.since, until=params.until)
    page = await run_in_threadpool(
        lambda: state.store.list_archive_page(where, cursor=params.cursor, limit=params.limit))
    return {"queries": [r.public_view() for r in page.records], "next_cursor": page.next_cursor}


# -- the admin audit log ---------------------------------------------------------------------------
@router.get("/log", summary="The admin audit log, oldest first, a page at a time")
async def admin_events(state: StateDep, cursor: str | None = None,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """Every admin change: who, what, when, before and after. Pass ``next_cursor`` back as
    ``cursor`` for the next page (null on the last one)."""
    events, next_cursor = await run_in_threadpool(
        lambda: state.store.list_admin_events(cursor=cursor, limit=limit))
    return {"events": [e.view() for e in events], "next_cursor": next_cursor}
