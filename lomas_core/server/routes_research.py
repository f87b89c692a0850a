"""Researcher endpoints under ``/v1`` (see docs/api.md).

Handlers return :class:`~lomas_core.server.responses.LomasJSON` directly: encoded once, budgets as
exact decimal numerals. Their shapes are the response models of :mod:`lomas_core.server.schemas`,
which the OpenAPI document shows (``openapi.ROUTE_RESPONSES``) and the contract tests check.
"""

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
from lomas_core.server.responses import LomasJSON, budget_json
from lomas_core.server.schemas import ArchiveQuery, CostRequest, DummyRequest, QueryRequest
from lomas_core.server.state import ServerState, get_state
from lomas_core.store import ArchiveFilter

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["researcher"], default_response_class=LomasJSON)

UserDep = Annotated[User, Depends(current_user)]
StateDep = Annotated[ServerState, Depends(get_state)]


async def _description(state: ServerState, dataset: str) -> Any:
    try:
        return await run_in_threadpool(state.store.get_dataset, dataset)
    except NotFound:
        raise access_denied(dataset) from None


@router.get("/datasets", summary="Datasets granted to you")
async def list_datasets(user: UserDep, state: StateDep) -> LomasJSON:
    def read() -> dict[str, Any]:
        granted = {g.dataset for g in state.store.list_grants(user.name)}
        return {"datasets": [{"name": d.name, "description": d.description}
                             for d in state.store.list_datasets() if d.name in granted]}

    return LomasJSON(await run_in_threadpool(read))


@router.get("/datasets/{name}/metadata", summary="Public metadata of a dataset")
async def get_metadata(name: str, user: UserDep, state: StateDep) -> LomasJSON:
    await require_grant(state, user, name)
    description = await _description(state, name)
    metadata = await run_in_threadpool(state.metadata, description)
    return LomasJSON(metadata.model_dump(mode="json", exclude_none=True))


@router.post("/datasets/{name}/dummy", summary="A dummy dataset made from public metadata (free)")
async def get_dummy(name: str, body: DummyRequest, user: UserDep, state: StateDep) -> LomasJSON:
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

    return LomasJSON(await run_in_threadpool(build))


@router.get("/datasets/{name}/budget", summary="Your initial, spent and remaining budget")
async def get_budget(name: str, user: UserDep, state: StateDep) -> LomasJSON:
    grant = await require_grant(state, user, name)
    return LomasJSON({"initial": budget_json(grant.initial), "spent": budget_json(grant.spent),
                      "remaining": budget_json(grant.remaining)})


@router.get("/datasets/{name}/queries",
            summary="Your past queries on a dataset, oldest first, a page at a time")
async def get_queries(name: str, user: UserDep, state: StateDep,
                      params: Annotated[ArchiveQuery, Query()]) -> LomasJSON:
    """Pass ``next_cursor`` back as ``cursor`` for the next page (null on the last one)."""
    await require_grant(state, user, name)
    where = ArchiveFilter(user=user.name, user_id=user.id, dataset=name, status=params.status,
                          engine=params.engine, since=params.since, until=params.until)
    page = await run_in_threadpool(
        lambda: state.store.list_archive_page(where, cursor=params.cursor, limit=params.limit))
    return LomasJSON({"queries": [{**r.public_view(), **budget_json(r.cost)} for r in page.records],
                      "next_cursor": page.next_cursor})


@router.post("/datasets/{name}/cost", summary="The privacy cost of a query (free, no data read)")
async def post_cost(name: str, body: CostRequest, user: UserDep,
                    request: Request) -> LomasJSON:
    service: QueryService = request.app.state.lomas_queries
    return LomasJSON(budget_json(await service.cost(user, name, body)))


@router.post("/datasets/{name}/query", summary="Run a query (charged) or a dummy query (free)")
async def post_query(name: str, body: QueryRequest, user: UserDep, request: Request,
                     idempotency_key: Annotated[str | None, Header()] = None) -> LomasJSON:
    service: QueryService = request.app.state.lomas_queries
    return LomasJSON(await service.query(user, name, body, idempotency_key))
