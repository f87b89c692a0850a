"""Prometheus metrics for operators: an observer plugin on the query hooks, plus HTTP and store timing.

Everything here is about *how the platform runs*, never about the data: label values are route
templates, engine names, lifecycle stages, outcome and error codes, store method names. Dataset
names appear only with ``observability.label_datasets: true`` (otherwise the budget counters are
labelled ``dataset="_all"``); user names, query text, results and secrets never appear.

Each app has its own registry (several apps in one test process do not collide). With several
HTTP processes (``server.workers > 1``) set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder shared
by the processes: counters and histograms then add up across processes on every scrape (see
docs/observability.md); the cache and worker-pool gauges are those of the process that answers.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from lomas_core.hookspecs import hookimpl

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from lomas_core.models import ArchiveRecord
    from lomas_core.server.state import ServerState

__all__ = ["ALL_DATASETS", "STAGES", "Metrics", "MetricsMiddleware", "TimedStore", "render",
           "scrape_registry"]

log = logging.getLogger("lomas.observability")

#: The label value of the budget counters when datasets are not labelled.
ALL_DATASETS = "_all"
#: Lifecycle stages timed per engine.
STAGES = ("cost", "charge", "load", "run", "archive")

# Coarse buckets on purpose: timings can hint at data sizes, so no fine resolution.
_LATENCY_BUCKETS = (0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0)
_STORE_BUCKETS = (0.001, 0.005, 0.025, 0.1, 0.5, 2.5)


class _StateCollector(Collector):
    """Cache and worker-pool figures, read from the server state at scrape time."""

    def __init__(self) -> None:
        self.state: ServerState | None = None

    def collect(self) -> Iterator[Any]:
        state = self.state
        if state is None:
            return
        cache = state.cache
        yield CounterMetricFamily("lomas_cache_hits", "Dataset cache hits", value=cache.hits)
        yield CounterMetricFamily("lomas_cache_misses", "Dataset cache misses (loads through an "
                                  "adapter)", value=cache.loads)
        yield CounterMetricFamily("lomas_cache_evictions", "Datasets evicted from the cache",
                                  value=cache.evictions)
        yield GaugeMetricFamily("lomas_cache_bytes", "Bytes held by the dataset cache",
                                value=cache.total_bytes)
        pool = state.pool
        if pool is None:
            return
        yield GaugeMetricFamily("lomas_workers", "Execution worker processes of this process's "
                                "pool", value=pool.size)
        yield GaugeMetricFamily("lomas_workers_busy", "Execution workers running a task",
                                value=pool.busy)
        yield CounterMetricFamily("lomas_worker_restarts", "Execution workers replaced",
                                  value=pool.replaced)
        kills = CounterMetricFamily("lomas_worker_kills", "Execution workers killed or lost, by "
                                    "cause", labels=["cause"])
        for cause, count in sorted(pool.kills.items()):
            kills.add_metric([cause], count)
        yield kills


class Metrics:
    """The metrics of one app. Registered with pluggy as an observer (``lomas.metrics``)."""

    def __init__(self, *, label_datasets: bool = False) -> None:
        self.label_datasets = label_datasets
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter("lomas_http_requests", "HTTP requests by route and status",
                                     ["route", "method", "status"], registry=r)
        self.http_duration = Histogram("lomas_http_request_duration_seconds",
                                       "HTTP request duration by route", ["route"],
                                       buckets=_LATENCY_BUCKETS, registry=r)
        self.stage_duration = Histogram("lomas_query_stage_duration_seconds",
                                        "Query lifecycle stage duration by engine",
                                        ["engine", "stage"], buckets=_LATENCY_BUCKETS, registry=r)
        self.queries = Counter("lomas_queries", "Real queries by outcome (success, failed, "
                               "released, refused) and error code", ["engine", "outcome", "code"],
                               registry=r)
        self.epsilon = Counter("lomas_budget_charged_epsilon", "Epsilon charged (kept charges)",
                               ["dataset"], registry=r)
        self.delta = Counter("lomas_budget_charged_delta", "Delta charged (kept charges)",
                             ["dataset"], registry=r)
        self.store_duration = Histogram("lomas_store_operation_duration_seconds",
                                        "Budget store call duration by operation", ["operation"],
                                        buckets=_STORE_BUCKETS, registry=r)
        self.store_errors = Counter("lomas_store_errors", "Budget store calls that raised, by "
                                    "operation", ["operation"], registry=r)
        self._stage_children: dict[tuple[str, str], Any] = {}
        self._state = _StateCollector()
        r.register(self._state)

    def attach(self, state: ServerState) -> None:
        """Read cache and pool figures from ``state`` from now on."""
        self._state.state = state

    def _dataset(self, name: str) -> str:
        return name if self.label_datasets else ALL_DATASETS

    # -- observer hooks (the same hooks serve third-party observers) -------------------------------
    @hookimpl
    def lomas_query_completed(self, record: ArchiveRecord) -> None:
        code = str((record.error or {}).get("code", "")) if record.status == "failed" else ""
        self.queries.labels(record.engine, record.status, code).inc()
        if record.status in ("success", "failed"):  # released charges were refunded
            dataset = self._dataset(record.dataset)
            self.epsilon.labels(dataset).inc(float(record.cost.epsilon))
            self.delta.labels(dataset).inc(float(record.cost.delta))

    @hookimpl
    def lomas_query_refused(self, engine: str, code: str) -> None:
        self.queries.labels(engine, "refused", code).inc()

    @hookimpl
    def lomas_query_stage(self, engine: str, stage: str, seconds: float) -> None:
        child = self._stage_children.get((engine, stage))
        if child is None:  # engines and stages are few: keep each labelled child
            child = self._stage_children[(engine, stage)] = self.stage_duration.labels(engine, stage)
        child.observe(seconds)


def scrape_registry(metrics: Metrics) -> CollectorRegistry:
    """What a scrape reads: this process's registry, or with ``PROMETHEUS_MULTIPROC_DIR`` the sum
    over the HTTP processes plus this process's cache and pool figures."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return metrics.registry
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(metrics._state)
    return registry


def render(metrics: Metrics) -> tuple[bytes, str]:
    """The exposition text (and its content type) for a scrape."""
    from prometheus_client import CONTENT_TYPE_LATEST

    return generate_latest(scrape_registry(metrics)), CONTENT_TYPE_LATEST


class TimedStore:
    """A budget store proxy that times every method call and counts the ones that raise.

    The timing wrapper of each method is made once and kept on the proxy, with its histogram child
    already labelled: a few microseconds per call, not tens.
    """

    def __init__(self, store: Any, metrics: Metrics) -> None:
        self._store = store
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if name.startswith("_") or not callable(attr):
            return attr
        metrics = self._metrics
        store = self._store
        duration = metrics.store_duration.labels(name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return getattr(store, name)(*args, **kwargs)  # looked up per call: may be replaced
            except Exception:
                metrics.store_errors.labels(name).inc()
                raise
            finally:
                duration.observe(time.perf_counter() - start)

        self.__dict__[name] = timed  # found before __getattr__ from now on
        return timed


class MetricsMiddleware:
    """Counts and times HTTP requests by route template (never the raw path: it names datasets)."""

    def __init__(self, app: ASGIApp, metrics: Callable[[], Metrics | None]) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            metrics = self.metrics()
            if metrics is not None:
                route = scope.get("route")
                template = getattr(route, "path", None) or "other"
                metrics.http_requests.labels(template, scope.get("method", ""), str(status[0])).inc()
                metrics.http_duration.labels(template).observe(time.perf_counter() - start)


@contextmanager
def timed_stage(call: Callable[..., Any], engine: str, stage: str) -> Iterator[None]:
    """Time a lifecycle stage and report it through the ``lomas_query_stage`` hook."""
    start = time.perf_counter()
    try:
        yield
    finally:
        try:
            call(engine=engine, stage=stage, seconds=time.perf_counter() - start)
        except Exception:  # noqa: BLE001 - observers must not break queries
            log.exception("a lomas_query_stage hook failed")
