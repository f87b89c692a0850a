"""The OpenAPI document as the server really behaves (see docs/api.md).

FastAPI documents every route with its default ``422 HTTPValidationError`` and an untyped 200.
lomas answers validation errors with ``400 invalid_request`` and every error with
``{"error": {"code", "message"}}``, so the document is rewritten here once, after start-up:

- each operation lists the error statuses it can return (from :data:`ROUTE_ERRORS`), each with the
  error model and one example per error code;
- each 200/201 response gets a typed schema (:data:`ROUTE_RESPONSES`);
- ``/cost`` and ``/query`` bodies become one schema per enabled engine, discriminated by
  ``engine``, whose ``query`` is that engine's own pydantic ``Query`` model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from lomas_core.errors import LomasError
from lomas_core.metadata import Metadata
from lomas_core.models import DatasetDescription
from lomas_core.server import admin_responses as admin
from lomas_core.server import schemas as research
from lomas_core.server.schemas import DummySpec

__all__ = ["ROUTE_ERRORS", "ROUTE_RESPONSES", "install_docs", "install_openapi", "status_of"]

#: Where the Swagger UI / ReDoc assets are served.
DOCS_ASSETS = "/docs-assets"


# -- models of the responses ------------------------------------------------------------------------
class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorDetail(_Open):
    """What went wrong: a stable ``code``, a human ``message`` and sometimes ``details``."""

    code: str = Field(description="stable error code (docs/api.md)")
    message: str
    details: dict[str, Any] | None = None


class ErrorResponse(BaseModel):
    """Every error body."""

    error: ErrorDetail


class Health(_Open):
    status: str = Field(examples=["ok"])
    version: str


class HealthUnavailable(_Open):
    status: str = Field(examples=["unavailable"])
    version: str
    error: ErrorDetail


class HealthNotReady(_Open):
    status: str = Field(examples=["unavailable", "starting"])
    version: str
    #: What is not reachable: ``store``, ``workers``.
    unavailable: list[str] | None = None


# -- which route returns what -----------------------------------------------------------------------
_AUTH = ("unauthenticated", "suspended", "store_unavailable", "identity_provider_unavailable",
         "internal_error")
_ADMIN = (*_AUTH, "access_denied", "invalid_request")
_BODY = ("invalid_request", "payload_too_large")
_DATASET = (*_AUTH, "access_denied", "invalid_request")
_MISSING = ("not_found",)

#: Error codes each operation can answer with, keyed ``"METHOD /path"``.
ROUTE_ERRORS: dict[str, tuple[str, ...]] = {
    "GET /health": ("store_unavailable",),
    "GET /health/live": ("internal_error",),
    "GET /health/ready": ("store_unavailable",),
    "GET /v1/datasets": _AUTH,
    "GET /v1/datasets/{name}/metadata": (*_DATASET, "dataset_unavailable"),
    "POST /v1/datasets/{name}/dummy": (*_DATASET, *_BODY, "dataset_unavailable"),
    "GET /v1/datasets/{name}/budget": _DATASET,
    "GET /v1/datasets/{name}/queries": _DATASET,
    "POST /v1/datasets/{name}/cost": (*_DATASET, *_BODY, "invalid_query", "dataset_unavailable"),
    "POST /v1/datasets/{name}/query": (
        *_DATASET, *_BODY, "insufficient_budget", "idempotency_key_reused", "query_in_progress",
        "invalid_query", "query_failed", "charged_failure", "too_many_queries",
        "dataset_unavailable", "query_timeout"),
    "GET /v1/admin/plugins": _ADMIN,
    "GET /v1/admin/users": _ADMIN,
    "POST /v1/admin/users": (*_ADMIN, *_BODY, "conflict"),
    "DELETE /v1/admin/users/{user}": (*_ADMIN, *_MISSING),
    "POST /v1/admin/users/{user}/suspend": (*_ADMIN, *_MISSING),
    "POST /v1/admin/users/{user}/resume": (*_ADMIN, *_MISSING),
    "POST /v1/admin/users/{user}/tokens": (*_ADMIN, *_MISSING, "payload_too_large"),
    "GET /v1/admin/users/{user}/tokens": (*_ADMIN, *_MISSING),
    "DELETE /v1/admin/users/{user}/tokens/{token_id}": (*_ADMIN, *_MISSING),
    "DELETE /v1/admin/users/{user}/tokens": (*_ADMIN, *_MISSING),
    "GET /v1/admin/datasets": _ADMIN,
    "POST /v1/admin/datasets": (*_ADMIN, *_BODY, "conflict"),
    "GET /v1/admin/datasets/{name}": (*_ADMIN, *_MISSING),
    "DELETE /v1/admin/datasets/{name}": (*_ADMIN, *_MISSING),
    "GET /v1/admin/grants": (*_ADMIN, *_MISSING),
    "POST /v1/admin/grants": (*_ADMIN, *_BODY, *_MISSING, "conflict"),
    "PUT /v1/admin/grants/{user}/{dataset}": (*_ADMIN, *_BODY, *_MISSING),
    "DELETE /v1/admin/grants/{user}/{dataset}": (*_ADMIN, *_MISSING),
    "GET /v1/admin/archive": _ADMIN,
    "GET /v1/admin/log": _ADMIN,
}

#: The success model of each operation.
ROUTE_RESPONSES: dict[str, type[BaseModel] | Any] = {
    "GET /health": Health,
    "GET /health/live": Health,
    "GET /health/ready": Health,
    "GET /v1/datasets": research.DatasetListResponse,
    "GET /v1/datasets/{name}/metadata": Metadata,
    "POST /v1/datasets/{name}/dummy": research.TableResult,
    "GET /v1/datasets/{name}/budget": research.BudgetResponse,
    "GET /v1/datasets/{name}/queries": research.ArchivePageResponse,
    "POST /v1/datasets/{name}/cost": research.BudgetAmounts,
    "POST /v1/datasets/{name}/query": research.QueryResponse,
    "GET /v1/admin/plugins": admin.PluginList,
    "GET /v1/admin/users": admin.UserList,
    "POST /v1/admin/users": admin.UserView,
    "DELETE /v1/admin/users/{user}": admin.UserRemoved,
    "POST /v1/admin/users/{user}/suspend": admin.UserView,
    "POST /v1/admin/users/{user}/resume": admin.UserView,
    "POST /v1/admin/users/{user}/tokens": admin.IssuedToken,
    "GET /v1/admin/users/{user}/tokens": admin.TokenList,
    "DELETE /v1/admin/users/{user}/tokens/{token_id}": admin.TokenRevoked,
    "DELETE /v1/admin/users/{user}/tokens": admin.TokensRevoked,
    "GET /v1/admin/datasets": admin.AdminDatasetList,
    "POST /v1/admin/datasets": DatasetDescription,
    "GET /v1/admin/datasets/{name}": DatasetDescription,
    "DELETE /v1/admin/datasets/{name}": admin.DatasetRemoved,
    "GET /v1/admin/grants": admin.GrantList,
    "POST /v1/admin/grants": admin.GrantCreated,
    "PUT /v1/admin/grants/{user}/{dataset}": admin.GrantView,
    "DELETE /v1/admin/grants/{user}/{dataset}": admin.GrantRevoked,
    "GET /v1/admin/archive": admin.AdminQueryPage,
    "GET /v1/admin/log": admin.AdminEventPage,
}

_EXAMPLE_BUDGET = {"epsilon": 0.5, "delta": 0.0}
_SUCCESS_EXAMPLES: dict[str, Any] = {
    "GET /v1/datasets/{name}/budget": {"initial": {"epsilon": 1.0, "delta": 1e-5},
                                       "spent": _EXAMPLE_BUDGET,
                                       "remaining": {"epsilon": 0.5, "delta": 1e-5}},
    "POST /v1/datasets/{name}/cost": _EXAMPLE_BUDGET,
    "POST /v1/datasets/{name}/query": {
        "query_id": "q-0001", "engine": "smartnoise_sql", "dummy": False,
        "result": {"type": "table", "columns": ["n"], "dtypes": ["int"], "rows": [[1021]]},
        "epsilon": 0.5, "delta": 0.0, "remaining": _EXAMPLE_BUDGET},
}


def _error_classes(base: type[LomasError] = LomasError) -> list[type[LomasError]]:
    found = [base]
    for sub in base.__subclasses__():
        found.extend(_error_classes(sub))
    return found


def status_of(code: str) -> int:
    """The HTTP status of an error code (``LookupError`` for an unknown one)."""
    for cls in _error_classes():
        if cls.code == code:
            return cls.status
    raise LookupError(code)


def _doc_of(code: str) -> str:
    for cls in _error_classes():
        if cls.code == code:
            return (cls.__doc__ or code).strip().splitlines()[0]
    return code


# -- rewriting the document -------------------------------------------------------------------------
def _schema(doc: dict[str, Any], annotation: Any) -> dict[str, Any]:
    """The schema of ``annotation`` with its models added to the document's components."""
    schema = TypeAdapter(annotation).json_schema(ref_template="#/components/schemas/{model}",
                                                 mode="serialization")
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    for name, sub in schema.pop("$defs", {}).items():
        components.setdefault(name, sub)
    if schema.get("title") and schema.get("type") == "object" and isinstance(annotation, type):
        components[annotation.__name__] = schema
        return {"$ref": f"#/components/schemas/{annotation.__name__}"}
    return schema


def _error_responses(doc: dict[str, Any], codes: tuple[str, ...]) -> dict[str, Any]:
    ref = _schema(doc, ErrorResponse)
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(status_of(code), []).append(code)
    out: dict[str, Any] = {}
    for status, group in sorted(by_status.items()):
        examples = {code: {"summary": _doc_of(code),
                           "value": {"error": {"code": code, "message": _doc_of(code)}}}
                    for code in group}
        out[str(status)] = {
            "description": "; ".join(f"`{c}`" for c in group),
            "content": {"application/json": {"schema": ref, "examples": examples}}}
    return out


def _engine_bodies(doc: dict[str, Any], engines: dict[str, Any], with_dummy: bool) -> dict[str, Any]:
    """``oneOf`` one body per engine, discriminated by ``engine``."""
    variants = []
    mapping = {}
    suffix = "Query" if with_dummy else "Cost"
    for name, engine in sorted(engines.items()):
        query_model = getattr(engine, "Query", None)
        query_schema = (_schema(doc, query_model) if isinstance(query_model, type)
                        else {"type": "object"})
        properties: dict[str, Any] = {"engine": {"type": "string", "const": name, "enum": [name]},
                                      "query": query_schema}
        if with_dummy:
            properties["dummy"] = {"anyOf": [_schema(doc, DummySpec), {"type": "null"}]}
        title = "".join(part.capitalize() for part in name.split("_")) + suffix + "Request"
        doc["components"]["schemas"][title] = {
            "title": title, "type": "object", "properties": properties,
            "required": ["engine", "query"], "additionalProperties": False}
        ref = f"#/components/schemas/{title}"
        variants.append({"$ref": ref})
        mapping[name] = ref
    return {"oneOf": variants, "discriminator": {"propertyName": "engine", "mapping": mapping}}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The rewritten document (see the module docstring)."""
    doc = get_openapi(title=app.title, version=app.version, description=app.description,
                      routes=app.routes, tags=app.openapi_tags)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    state = getattr(app.state, "lomas", None)
    engines: dict[str, Any] = dict(state.plugins.engines) if state is not None else {}
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            key = f"{method.upper()} {path}"
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            success = "201" if "201" in responses else "200"
            model = ROUTE_RESPONSES.get(key)
            if model is not None:
                content: dict[str, Any] = {"schema": _schema(doc, model)}
                if key in _SUCCESS_EXAMPLES:
                    content["example"] = _SUCCESS_EXAMPLES[key]
                responses[success] = {
                    "description": responses.get(success, {}).get("description", "Success"),
                    "content": {"application/json": content}}
            responses.update(_error_responses(doc, ROUTE_ERRORS.get(key, ("internal_error",))))
            if key == "GET /health":
                responses["503"]["content"]["application/json"]["schema"] = _schema(
                    doc, HealthUnavailable)
            if key == "GET /health/ready":
                responses["503"]["content"]["application/json"]["schema"] = _schema(
                    doc, HealthNotReady)
            if engines and key in ("POST /v1/datasets/{name}/cost", "POST /v1/datasets/{name}/query"):
                body = operation["requestBody"]["content"]["application/json"]
                body["schema"] = _engine_bodies(doc, engines, with_dummy=key.endswith("/query"))
    return doc


def install_openapi(app: FastAPI) -> None:
    """Serve the rewritten document (built once, on first use after start-up)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None or (
                getattr(app.state, "lomas", None) is not None
                and not getattr(app.state, "lomas_openapi_final", False)):
            app.openapi_schema = build_openapi(app)
            app.state.lomas_openapi_final = getattr(app.state, "lomas", None) is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _assets_dir() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


def install_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` from assets shipped in a wheel, never from a CDN.

    Servers next to sensitive data usually have no internet access; the pages must still load.
    """
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles
    from starlette.responses import HTMLResponse

    app.mount(DOCS_ASSETS, StaticFiles(directory=_assets_dir()), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png")

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json", title=f"{app.title} - ReDoc",
            redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png", with_google_fonts=False)
