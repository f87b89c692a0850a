"""Researcher endpoints under ``/v1`` (see docs/api.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from starlette.concurrency import run_in_threadpool

from lomas_core import results
from lomas_core.dummy import make_dummy
from lomas_core.errors import InvalidRequest, NotFound
from lomas_core.models import User
from lomas_core.server.auth import access_denied, current_user, require_grant
from lomas_core.server.lifecycle import QueryService
from lomas_core.server.schemas import ArchiveQuery, CostRequest, DummyRequest, QueryRequest
from lomas_core.server.state import ServerState, get_state
from lomas_core.store import ArchiveFilter

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["researcher"])

UserDep = Annotated[User, Depends(current_user)]
StateDep = Annotated[ServerState, Depends(get_state)]


async def _description(state: ServerState, dataset: str) -> Any:
    try:
        return await run_in_threadpool(state.store.get_dataset, dataset)
    except NotFound:
        raise access_denied(dataset) from None


@router.get("/datasets", summary="Datasets granted to you")
async def list_datasets(user: UserDep, state: StateDep) -> dict[str, Any]:
    grants = await run_in_threadpool(state.store.list_grants, user.name)
    granted = {g.dataset for g in grants}
    descriptions = await run_in_threadpool(state.store.list_datasets)
    return {"datasets": [{"name": d.name, "description": d.description}
                         for d in descriptions if d.name in granted]}


@router.get("/datasets/{name}/metadata", summary="Public metadata of a dataset")
async def get_metadata(name: str, user: UserDep, state: StateDep) -> dict[str, Any]:
    await require_grant(state, user, name)
    description = await _description(state, name)
    metadata = await run_in_threadpool(state.metadata, description)
    return metadata.model_dump(mode="json", exclude_none=True)


@router.post("/datasets/{name}/dummy", summary="A dummy dataset made from public metadata (free)")
async def get_dummy(name: str, body: DummyRequest, user: UserDep, state: StateDep) -> dict[str, Any]:
    limit = state.config.limits.max_dummy_rows
    if body.rows > limit:
        raise InvalidRequest(f"rows must be at most {limit}")
    await require_grant(state, user, name)
    description = await _description(state, name)
    metadata = await run_in_threadpool(state.metadata, description)

    def build() -> dict[str, Any]:
        table = make_dummy(metadata, body.rows, body.seed, dataset=name)
        columns = list(metadata.columns)
        dtypes: list[str] = [metadata.columns[c].type for c in columns]
        data = [table.column(c).to_pylist() for c in columns]
        return results.table(columns, dtypes, [list(row) for row in zip(*data, strict=True)])

    return await run_in_threadpool(build)


@router.get("/datasets/{name}/budget", summary="Your initial, spent and remaining budget")
async def get_budget(name: str, user: UserDep, state: StateDep) -> dict[str, Any]:
    grant = await require_grant(state, user, name)
    return {"initial": grant.initial.as_floats(), "spent": grant.spent.as_floats(),
            "remaining": grant.remaining.as_floats()}


@router.get("/datasets/{name}/queries",
            summary="Your past queries on a dataset, oldest first, a page at a time")
async def get_queries(name: str, user: UserDep, state: StateDep,
                      params: Annotated[ArchiveQuery, Query()]) -> dict[str, Any]:
    """Pass ``next_cursor`` back as ``cursor`` for the next page (null on the last one)."""
    await require_grant(state, user, name)
    where = ArchiveFilter(user=user.name, user_id=user.id, dataset=name, status=params.status,
                          engine=params.engine, since=params.since, until=params.until)
    page = await run_in_threadpool(
        lambda: state.store.list_archive_page(where, cursor=params.cursor, limit=params.limit))
    return {"queries": [r.public_view() for r in page.records], "next_cursor": page.next_cursor}


@router.post("/datasets/{name}/cost", summary="The privacy cost of a query (free, no data read)")
async def post_cost(name: str, body: CostRequest, user: UserDep,
                    request: Request) -> dict[str, float]:
    service: QueryService = request.app.state.lomas_queries
    cost = await service.cost(user, name, body)
    return cost.as_floats()


@router.post("/datasets/{name}/query", summary="Run a query (charged) or a dummy query (free)")
async def post_query(name: str, body: QueryRequest, user: UserDep, request: Request,
                     idempotency_key: Annotated[str | None, Header()] = None) -> dict[str, Any]:
    service: QueryService = request.app.state.lomas_queries
    return await service.query(user, name, body, idempotency_key)
