"""Admin endpoints under ``/v1/admin`` (admin role; see docs/api.md).

Every change goes through :mod:`lomas_core.admin_ops`, the CLI's path too: the change and its
admin audit-log entry are written together by the store.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from lomas_core import admin_ops
from lomas_core.admin_input import check_description, grant_budget, smartnoise_delta_warning
from lomas_core.admin_log import api_actor
from lomas_core.budget import Budget
from lomas_core.errors import InvalidRequest
from lomas_core.models import DatasetDescription, User
from lomas_core.plugins import installed_plugins
from lomas_core.server.admin_responses import (
    AdminDatasetList,
    AdminEventPage,
    AdminEventView,
    AdminQueryPage,
    AdminQueryRecord,
    DatasetRemoved,
    GrantCreated,
    GrantList,
    GrantRevoked,
    GrantView,
    IssuedToken,
    PluginList,
    PluginView,
    TokenList,
    TokenRevoked,
    TokensRevoked,
    TokenView,
    UserList,
    UserRemoved,
    UserView,
)
from lomas_core.server.auth import admin_user
from lomas_core.server.schemas import AdminArchiveQuery, BudgetBody, GrantRequest, UserRequest
from lomas_core.server.state import ServerState, get_state
from lomas_core.store import ArchiveFilter
from lomas_core.tokens import expiry

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(admin_user)])

StateDep = Annotated[ServerState, Depends(get_state)]
AdminDep = Annotated[User, Depends(admin_user)]


def _budget(body: BudgetBody) -> Budget:
    return grant_budget(body.epsilon, body.delta)  # the CLI's rule too


def _user(user: User) -> UserView:
    return UserView(**user.model_dump())


# -- plugins ---------------------------------------------------------------------------------------
@router.get("/plugins", summary="Installed plugins and whether they are enabled and loaded")
async def list_plugins(state: StateDep) -> PluginList:
    loaded = {"engine": set(state.plugins.engines), "adapter": set(state.plugins.adapters),
              "store": {state.config.store.name}}
    infos = await run_in_threadpool(installed_plugins, state.config)
    return PluginList(plugins=[PluginView(**info.as_dict(),
                                          loaded=info.name in loaded.get(info.kind, set()))
                               for info in infos])


# -- users and tokens ------------------------------------------------------------------------------
@router.get("/users", summary="All users")
async def list_users(state: StateDep) -> UserList:
    users = await run_in_threadpool(state.store.list_users)
    return UserList(users=[_user(u) for u in users])


@router.post("/users", status_code=201, summary="Create a user")
async def add_user(body: UserRequest, state: StateDep, admin: AdminDep) -> UserView:
    user = await run_in_threadpool(admin_ops.add_user, state.store, api_actor(admin),
                                   User(name=body.name, is_admin=body.is_admin))
    return _user(user)


@router.delete("/users/{user}", summary="Delete a user, its tokens and grants (its id is never reused)")
async def remove_user(user: str, state: StateDep, admin: AdminDep) -> UserRemoved:
    before = await run_in_threadpool(admin_ops.remove_user, state.store, api_actor(admin), user)
    return UserRemoved(deleted=user, id=before.id)


@router.post("/users/{user}/suspend", summary="Suspend a user (403 suspended, nothing charged)")
async def suspend_user(user: str, state: StateDep, admin: AdminDep) -> UserView:
    return _user(await run_in_threadpool(admin_ops.set_suspended, state.store, api_actor(admin),
                                         user, True))


@router.post("/users/{user}/resume", summary="Lift a user's suspension")
async def resume_user(user: str, state: StateDep, admin: AdminDep) -> UserView:
    return _user(await run_in_threadpool(admin_ops.set_suspended, state.store, api_actor(admin),
                                         user, False))


@router.post("/users/{user}/tokens", status_code=201, summary="Issue a token (shown once)")
async def add_token(user: str, state: StateDep, admin: AdminDep,
                    expires: Annotated[str | None, Query(max_length=40, description=(
                        "expiry: a duration (90d, 12h, 30m, 2w) or an ISO date/time"))] = None,
                    ) -> IssuedToken:
    try:
        expires_at = expiry(expires)
    except ValueError as exc:
        raise InvalidRequest(f"invalid expires: {exc}") from None
    token, info = await run_in_threadpool(admin_ops.issue_token, state.store, api_actor(admin),
                                          user, expires_at)
    return IssuedToken(token=token, id=info.id,
                       expires_at=expires_at.isoformat() if expires_at else None)


@router.get("/users/{user}/tokens", summary="A user's tokens: ids and times, never values")
async def list_tokens(user: str, state: StateDep) -> TokenList:
    tokens = await run_in_threadpool(state.store.list_tokens, user)
    return TokenList(tokens=[TokenView.of(t) for t in tokens])


@router.delete("/users/{user}/tokens/{token_id}", summary="Revoke one token by its id")
async def revoke_token(user: str, token_id: str, state: StateDep, admin: AdminDep) -> TokenRevoked:
    await run_in_threadpool(admin_ops.revoke_token, state.store, api_actor(admin), user, token_id)
    return TokenRevoked(revoked=1, id=token_id)


@router.delete("/users/{user}/tokens", summary="Revoke every token of a user")
async def revoke_tokens(user: str, state: StateDep, admin: AdminDep) -> TokensRevoked:
    count = await run_in_threadpool(admin_ops.revoke_tokens, state.store, api_actor(admin), user)
    return TokensRevoked(revoked=count)


# -- datasets --------------------------------------------------------------------------------------
@router.get("/datasets", summary="All dataset descriptions, with their ids")
async def list_datasets(state: StateDep) -> AdminDatasetList:
    return AdminDatasetList(datasets=await run_in_threadpool(state.store.list_datasets))


@router.post("/datasets", status_code=201, summary="Add (or with ?replace=true update) a dataset")
async def add_dataset(body: DatasetDescription, state: StateDep, admin: AdminDep,
                      replace: bool = False) -> DatasetDescription:
    """The store gives a new dataset its id (an ``id`` in the body is ignored); a replaced
    description keeps its dataset's id."""
    adapter = state.plugins.adapters.get(body.adapter)
    if adapter is None:
        enabled = ", ".join(sorted(state.plugins.adapters)) or "none"
        raise InvalidRequest(f"adapter '{body.adapter}' is not enabled; enabled: {enabled}")
    await run_in_threadpool(check_description, body, adapter)  # the CLI's checks too
    stored = await run_in_threadpool(lambda: admin_ops.put_dataset(
        state.store, api_actor(admin), body, replace=replace))
    state.forget(body.name)
    return stored


@router.get("/datasets/{name}", summary="One dataset description, with its id")
async def get_dataset(name: str, state: StateDep) -> DatasetDescription:
    return await run_in_threadpool(state.store.get_dataset, name)


@router.delete("/datasets/{name}", summary="Remove a dataset and its grants")
async def remove_dataset(name: str, state: StateDep, admin: AdminDep) -> DatasetRemoved:
    before = await run_in_threadpool(admin_ops.remove_dataset, state.store, api_actor(admin), name)
    state.forget(name)
    return DatasetRemoved(deleted=name, id=before.id)


# -- grants ----------------------------------------------------------------------------------------
@router.get("/grants", summary="Grants, optionally of one user")
async def list_grants(state: StateDep, user: str | None = None) -> GrantList:
    grants = await run_in_threadpool(state.store.list_grants, user)
    return GrantList(grants=[GrantView.of(g) for g in grants])


@router.post("/grants", status_code=201, summary="Grant a user access to a dataset with a budget")
async def add_grant(body: GrantRequest, state: StateDep, admin: AdminDep) -> GrantCreated:
    """``warnings`` says what the admin should know, e.g. that a grant with delta 0 cannot run
    SmartNoise-SQL queries when that engine is enabled."""
    budget = _budget(body)
    grant = await run_in_threadpool(lambda: admin_ops.grant(
        state.store, api_actor(admin), body.user, body.dataset, budget,
        reset_spent=body.reset_spent))
    warning = smartnoise_delta_warning(budget, state.plugins.engines, '"delta": 1e-4')
    return GrantCreated(**GrantView.of(grant).model_dump(), warnings=[warning] if warning else [])


@router.put("/grants/{user}/{dataset}", summary="Change a grant's initial budget")
async def set_grant(user: str, dataset: str, body: BudgetBody, state: StateDep,
                    admin: AdminDep) -> GrantView:
    grant = await run_in_threadpool(admin_ops.set_budget, state.store, api_actor(admin), user,
                                    dataset, _budget(body))
    return GrantView.of(grant)


@router.delete("/grants/{user}/{dataset}", summary="Revoke a grant (its spent budget is kept)")
async def remove_grant(user: str, dataset: str, state: StateDep, admin: AdminDep) -> GrantRevoked:
    before = await run_in_threadpool(admin_ops.revoke, state.store, api_actor(admin), user, dataset)
    return GrantRevoked(deleted={"user": user, "dataset": dataset},  # type: ignore[arg-type]
                        id=before.id)


# -- archive ---------------------------------------------------------------------------------------
@router.get("/archive", summary="Archived queries, filtered, oldest first, a page at a time")
async def list_archive(state: StateDep,
                       params: Annotated[AdminArchiveQuery, Query()]) -> AdminQueryPage:
    """Pass ``next_cursor`` back as ``cursor`` for the next page (null on the last one)."""
    where = ArchiveFilter(user=params.user, dataset=params.dataset, status=params.status,
                          engine=params.engine, since=params.since, until=params.until)
    page = await run_in_threadpool(
        lambda: state.store.list_archive_page(where, cursor=params.cursor, limit=params.limit))
    return AdminQueryPage(queries=[AdminQueryRecord.of(r) for r in page.records],
                          next_cursor=page.next_cursor)


# -- the admin audit log ---------------------------------------------------------------------------
@router.get("/log", summary="The admin audit log, oldest first, a page at a time")
async def admin_events(state: StateDep, cursor: str | None = None,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> AdminEventPage:
    """Every admin change: who, what, when, before and after. Pass ``next_cursor`` back as
    ``cursor`` for the next page (null on the last one)."""
    events, next_cursor = await run_in_threadpool(
        lambda: state.store.list_admin_events(cursor=cursor, limit=limit))
    return AdminEventPage(events=[AdminEventView(**e.view()) for e in events],
                          next_cursor=next_cursor)
