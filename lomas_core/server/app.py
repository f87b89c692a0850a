"""The FastAPI application: start-up, routes, limits and error handling.

Run it with ``lomas serve`` or with uvicorn's factory mode::

    LOMAS_CONFIG=lomas.yaml uvicorn --factory lomas_core.server.app:create_app_from_env
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from lomas_core import __version__
from lomas_core.admin_log import startup_notices
from lomas_core.cache import DatasetCache
from lomas_core.config import Config, config_path_from_env, load_config
from lomas_core.errors import LomasError, StoreUnavailable
from lomas_core.execution import ExecutionPool
from lomas_core.logs import QueryLogger, RequestIdMiddleware, configure_logging
from lomas_core.observability import (
    Metrics,
    MetricsMiddleware,
    TimedStore,
    render,
    scrape_registry,
)
from lomas_core.plugins import LoadedPlugins, load_plugins
from lomas_core.server.auth import bootstrap_admin
from lomas_core.server.errors import StartupFailureMiddleware, install_error_handlers
from lomas_core.server.lifecycle import QueryService, check_all_datasets
from lomas_core.server.limits import BodyLimitMiddleware, InflightLimiter
from lomas_core.server.openapi import install_docs, install_openapi
from lomas_core.server.routes_admin import router as admin_router
from lomas_core.server.routes_research import router as research_router
from lomas_core.server.state import ServerState

__all__ = ["create_app", "create_app_from_env"]

log = logging.getLogger("lomas.server")


def _start(config: Config, metrics: Metrics | None = None, tracing: Any = None) -> ServerState:
    """Build every plugin object, bootstrap the admin, warm up engines (blocking)."""
    plugins: LoadedPlugins = load_plugins(config)
    plugins.pm.register(QueryLogger(), name="lomas.query_log")
    if tracing is not None:
        plugins.pm.register(tracing, name="lomas.tracing")
    if metrics is not None:
        plugins.pm.register(metrics, name="lomas.metrics")
        plugins.store = TimedStore(plugins.store, metrics)  # type: ignore[assignment]
    pool: ExecutionPool | None = None
    try:
        workers = config.execution.worker_count()
        data_dir = None
        if workers > 0:
            data_dir = (config.resolve_path(config.execution.data_dir)
                        if config.execution.data_dir is not None
                        else Path(tempfile.gettempdir()) / f"lomas-data-{os.getuid()}")
        state = ServerState(
            config=config, plugins=plugins,
            cache=DatasetCache(config.cache.max_bytes, config.cache.revalidate_seconds,
                               data_dir=data_dir, max_load_rows=config.limits.max_load_rows,
                               max_load_bytes=config.limits.max_load_bytes),
            inflight=InflightLimiter(config.limits.max_inflight_per_user))
        if workers > 0:
            pool = ExecutionPool(config)
            pool.start()  # workers warm up their own engines in the background
            state.pool = pool
        if metrics is not None:
            metrics.attach(state)
        bootstrap_admin(state)
        for name, engine in plugins.engines.items():
            try:
                engine.warmup()
            except LomasError:
                raise
            except Exception as exc:
                from lomas_core.errors import PluginError

                raise PluginError(f"engine '{name}' failed to warm up: "
                                  f"{type(exc).__name__}: {exc}") from exc
        plugins.pm.hook.lomas_startup(context=plugins.context)
    except BaseException:
        if pool is not None:
            pool.close()
        plugins.close()
        raise
    return state


def create_app(config: Config) -> FastAPI:
    """The lomas REST API for ``config``. Plugins are loaded when the app starts (lifespan)."""
    configure_logging(config.logging.format)
    mconf = config.observability.metrics
    tracing = None
    if config.observability.tracing.enabled:
        from lomas_core.tracing import Tracing

        tracing = Tracing(config)
    metrics = (Metrics(label_datasets=config.observability.label_datasets)
               if mconf.enabled else None)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            state = await run_in_threadpool(_start, config, metrics, tracing)
        except LomasError as exc:
            # Reported once, by the server, in place of the traceback (StartupFailureMiddleware).
            app.state.lomas_startup_error = f"lomas start-up failed: {exc.message} [{exc.code}]"
            raise
        app.state.lomas = state
        app.state.lomas_queries = QueryService(state)
        await run_in_threadpool(startup_notices, state.store, state.plugins.adapters)
        try:  # a dataset the config no longer allows is reported now, not at its first query
            await run_in_threadpool(check_all_datasets, state)
        except LomasError as exc:
            log.warning("could not check the datasets at start-up: %s", exc.message)
        metrics_server = None
        if metrics is not None and mconf.port is not None:
            from prometheus_client import start_http_server

            try:
                metrics_server, _ = start_http_server(mconf.port, mconf.host,
                                                      scrape_registry(metrics))
                log.info("metrics served on %s:%d", mconf.host, mconf.port)
            except OSError as exc:  # another HTTP process of this server holds the port
                log.warning("metrics port %d not opened by this process (%s); with several "
                            "HTTP processes set PROMETHEUS_MULTIPROC_DIR so that the one "
                            "serving it reports them all", mconf.port, exc.strerror)
        log.info("lomas %s ready: engines=%s adapters=%s store=%s", __version__,
                 sorted(state.plugins.engines), sorted(state.plugins.adapters), config.store.name)
        try:
            yield
        finally:
            if metrics_server is not None:
                metrics_server.shutdown()
            if tracing is not None:
                await run_in_threadpool(tracing.shutdown)
            if state.pool is not None:
                await run_in_threadpool(state.pool.close)
            state.cache.clear()
            await run_in_threadpool(state.plugins.close)

    app = FastAPI(
        title="lomas",
        version=__version__,
        description="Remote differentially private queries on sensitive datasets.",
        lifespan=lifespan,
        docs_url=None, redoc_url=None,  # served from local assets by install_docs
    )
    install_error_handlers(app)
    app.add_middleware(StartupFailureMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.limits.max_body_bytes)
    app.include_router(research_router)
    app.include_router(admin_router)
    app.state.lomas_metrics = metrics
    if metrics is not None:
        app.add_middleware(MetricsMiddleware, metrics=lambda: metrics)
    if tracing is not None:
        from lomas_core.tracing import TracingMiddleware

        app.add_middleware(TracingMiddleware, tracing=tracing)
    app.add_middleware(RequestIdMiddleware)  # outermost: metrics and handlers see the id
    if metrics is not None:
        if mconf.port is None:
            @app.get(mconf.path, include_in_schema=False)
            async def prometheus_metrics() -> Response:
                body, content_type = render(metrics)
                return Response(body, media_type=content_type)

    @app.get("/health/live", tags=["health"], summary="Liveness: the process answers (no auth)")
    async def health_live() -> Any:
        return {"status": "ok", "version": __version__}

    @app.get("/health/ready", tags=["health"],
             summary="Readiness: the store and the execution workers are reachable (no auth)")
    async def health_ready(request: Request) -> Any:
        state: ServerState | None = getattr(request.app.state, "lomas", None)
        if state is None:
            return JSONResponse({"status": "starting", "version": __version__}, status_code=503)
        problems = []
        try:
            await run_in_threadpool(state.store.ping)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            log.warning("readiness: store unavailable (%s)", type(exc).__name__)
            problems.append("store")
        if state.pool is not None and not state.pool.ready():
            problems.append("workers")
        if problems:
            return JSONResponse({"status": "unavailable", "version": __version__,
                                 "unavailable": problems}, status_code=503)
        return {"status": "ok", "version": __version__}

    install_openapi(app)
    install_docs(app)

    @app.get("/health", tags=["health"], summary="Liveness and store reachability (no auth)")
    async def health(request: Request) -> Any:
        state: ServerState = request.app.state.lomas
        try:
            await run_in_threadpool(state.store.ping)
        except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
            error = exc if isinstance(exc, StoreUnavailable) else StoreUnavailable(
                "the budget store is unreachable")
            log.warning("health check: store unavailable (%s)", type(exc).__name__)
            return JSONResponse({"status": "unavailable", "version": __version__,
                                 **error.to_dict()}, status_code=503)
        return {"status": "ok", "version": __version__}

    return app


def create_app_from_env() -> FastAPI:
    """The app for the config file named by ``LOMAS_CONFIG`` (for uvicorn's ``--factory``)."""
    path = config_path_from_env()
    if path is None:
        log.warning("LOMAS_CONFIG is not set; using the built-in default configuration")
    return create_app(load_config(path))
