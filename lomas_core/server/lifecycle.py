"""The query lifecycle, the same for every engine.

``parse -> cost (public metadata) -> [dummy: run on a dummy dataset, free] -> atomic charge ->
load -> run (with a timeout) -> archive -> respond``. A mechanism is run at most once per charge;
an ``Idempotency-Key`` replays the stored outcome.

With the execution pool (the default) every engine call -- parse and cost, dummy generation and
dummy runs, real runs -- happens in an isolated worker process (:mod:`lomas_core.execution`); the
charge, the data load and the archive stay here. A worker killed or lost before the charge costs
nothing; after the charge its record is completed as failed and the charge stays (never re-run).
With ``execution.workers: 0`` engines run in threads of this process (tests, development).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool

from lomas_core.budget import Budget
from lomas_core.data import DataHandle
from lomas_core.dummy import dummy_handle
from lomas_core.engine import DatasetInfo, Engine
from lomas_core.errors import (
    ChargedFailure,
    DatasetUnavailable,
    IdempotencyConflict,
    InvalidQuery,
    InvalidRequest,
    LomasError,
    NotFound,
    QueryFailed,
    QueryInProgress,
    QueryTimeout,
)
from lomas_core.execution import WorkerError, WorkerLost, WorkerTimeout
from lomas_core.models import ArchiveRecord, DatasetDescription, Grant, User, utcnow
from lomas_core.observability import timed_stage
from lomas_core.reads import DataReads
from lomas_core.server.auth import access_denied
from lomas_core.server.cost_memo import CostMemo
from lomas_core.server.errors import status_for_code
from lomas_core.server.responses import RawJSON, budget_json
from lomas_core.server.schemas import CostRequest, QueryRequest
from lomas_core.server.state import ServerState
from lomas_core.source import SourceHandle, SqlSource, TargetCache, load_limit_message, target_key

__all__ = ["MAX_IDEMPOTENCY_KEY", "QueryService", "StoredError", "check_all_datasets",
           "check_dataset_config"]

log = logging.getLogger("lomas.query")

MAX_IDEMPOTENCY_KEY = 200


class StoredError(LomasError):
    """An error replayed from the archive (same code, status and message as the first time)."""

    def __init__(self, error: dict[str, Any]) -> None:
        details = error.get("details")
        super().__init__(str(error.get("message", "the query failed")),
                         **(details if isinstance(details, dict) else {}))
        self.code = str(error.get("code", "query_failed"))  # type: ignore[misc]
        self.status = status_for_code(self.code)  # type: ignore[misc]


def _where(exc: BaseException) -> str:
    """The exception's type and innermost frame, without its message."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    place = f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else ""
    return f"{type(exc).__name__}{place}"


def check_dataset_config(state: ServerState, description: DatasetDescription) -> None:
    """Raise DatasetUnavailable when the server's configuration cannot serve this dataset.

    The adapter must be enabled and accept the description's options under the current config
    (e.g. the path is still inside ``adapters.local.allowed_dirs``). Reads no data: run before
    every charge, at start-up and by ``lomas admin dataset check``. The researcher message names
    no server path; the reason goes to the log.
    """
    adapter = state.adapter(description)
    try:
        adapter.check_options(description.options)
    except Exception as exc:  # noqa: BLE001 - any refusal is a configuration problem
        reason = exc.message if isinstance(exc, LomasError) else type(exc).__name__
        log.error("dataset '%s' is misconfigured on this server: %s", description.name, reason)
        raise DatasetUnavailable(
            f"dataset '{description.name}' cannot be read with this server's configuration "
            "(an administrator must fix it); nothing was charged", reason="configuration") from None


def _check_pushdown(state: ServerState, engine: Engine, description: DatasetDescription,
                    metadata: Any) -> SqlSource | None:
    """The dataset's push-down source when ``engine`` runs there (None: read into memory).

    For an engine that cannot push down, a source that streams is read into memory, within
    ``limits.max_load_rows``: a dataset whose public ``rows`` is over it is refused here, free;
    a source that cannot stream is refused, free.
    """
    adapter = state.plugins.adapters.get(description.adapter)
    if not isinstance(adapter, SqlSource) or adapter.dialect in engine.pushdown:
        return adapter if isinstance(adapter, SqlSource) else None
    if not adapter.loadable:
        raise InvalidQuery(
            f"dataset '{description.name}' is answered where it lives (its {adapter.name} "
            f"source); the {engine.name} engine cannot run there: use an engine that can "
            "(smartnoise_sql); nothing was charged")
    limit = state.config.limits.max_load_rows
    rows = getattr(metadata, "rows", None)
    if limit is not None and rows is not None and rows > limit:
        raise InvalidQuery(f"{load_limit_message(description.name, 'max_load_rows', limit)}; "
                           "nothing was charged", reason="load_limit")
    return None


def check_all_datasets(state: ServerState) -> dict[str, str]:
    """Run :func:`check_dataset_config` on every dataset; ``{name: problem}`` (logged). For start-up."""
    problems: dict[str, str] = {}
    for description in state.store.list_datasets():
        try:
            check_dataset_config(state, description)
        except LomasError as exc:
            problems[description.name] = exc.message
    if problems:
        log.error("%d dataset(s) cannot be served with this configuration: %s; their queries are "
                  "refused without a charge until fixed (see lomas admin dataset check)",
                  len(problems), ", ".join(sorted(problems)))
    return problems


#: Said when a worker died during a task (memory or CPU limit, crash); never names the cause's
#: details, which depend on the data.
WORKER_LOST = ("the worker process running the query stopped (its memory or CPU limit, "
               "execution.memory_mb or execution.cpu_seconds, or a crash)")


def _out_of_memory(state: ServerState) -> str:
    """Said when a task ran out of memory in its worker: names the limit an admin can raise."""
    limit = state.config.execution.memory_mb
    return (f"the query ran out of memory in its worker process (execution.memory_mb: {limit}; "
            "an administrator can raise it)")


@dataclass
class _Prepared:
    engine: Engine
    #: The parsed query (in-process mode) or the raw payload (pool: the worker parses it).
    query: Any
    description: DatasetDescription
    info: DatasetInfo
    cost: Budget


@dataclass
class _Replayed:
    """The stored failure of an earlier request with the same Idempotency-Key."""

    error: LomasError


#: How long a passed configuration check of a dataset description is trusted (seconds).
CONFIG_CHECK_SECONDS = 5.0


class QueryService:
    """Runs researcher queries against one server state."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        #: Descriptions whose configuration check passed: ``{(adapter, options): expiry}``.
        self._checked: dict[tuple[str, str], float] = {}
        #: Open push-down targets (engines in threads only; workers keep their own).
        self.targets = TargetCache()
        #: Costs the workers returned, by their inputs (a repeated query skips the round trip).
        self.costs = CostMemo()

    def _check_config(self, description: DatasetDescription) -> None:
        """:func:`check_dataset_config`, a pass remembered for :data:`CONFIG_CHECK_SECONDS`.

        The check resolves paths on every query (~0.4 ms); remembering a pass briefly is safe
        because the adapter checks its options again when it loads (a refusal there is refunded:
        nothing was read), and any change to the description is a new key.
        """
        key = (description.adapter, json.dumps(description.options, sort_keys=True, default=str))
        now = time.monotonic()
        if self._checked.get(key, 0.0) > now:
            return
        check_dataset_config(self.state, description)
        if len(self._checked) >= 1024:
            self._checked.clear()
        self._checked[key] = now + CONFIG_CHECK_SECONDS

    # -- shared steps ------------------------------------------------------------------------------
    async def _prepare(self, user: User, dataset: str, body: CostRequest, *,
                       granted: bool = False) -> _Prepared:
        # One thread hop for every store and metadata read (each hop costs ~0.1-0.5 ms). The
        # grant is checked first: without one, the answer is 403 whatever the engine.
        query, description, metadata = await run_in_threadpool(
            self._look_up, user, dataset, body, not granted)
        return await self._costed(self.state.engine(body.engine), query, description, metadata,
                                  body.engine)

    async def _costed(self, engine: Engine, query: Any, description: DatasetDescription,
                      metadata: Any, engine_name: str) -> _Prepared:
        source = _check_pushdown(self.state, engine, description, metadata)
        info = DatasetInfo(name=description.name, metadata=metadata,
                           dialect=source.dialect if source is not None else None)
        with self._stage(engine_name, "cost"):
            cost = await self._cost(engine, query, info)
        return _Prepared(engine, query, description, info, cost)

    def _grant(self, user: User, dataset: str) -> Grant:
        """The caller's grant (blocking); the same refusal as :func:`require_grant`."""
        grant = self.state.store.get_grant(user.name, dataset)
        if grant is None:
            raise access_denied(dataset)
        return grant

    def _look_up(self, user: User, dataset: str, body: CostRequest,
                 check_grant: bool) -> tuple[Any, DatasetDescription, Any]:
        """Blocking: the grant check, the parsed query (in-process mode; with the pool the worker
        parses the raw payload as part of the cost task), the description (configuration checked)
        and the public metadata."""
        state = self.state
        if check_grant:
            self._grant(user, dataset)
        engine = state.engine(body.engine)
        query = body.query if state.pool is not None else engine.parse(body.query)
        try:
            description = state.store.get_dataset(dataset)
        except NotFound:  # removed between the grant check and now
            raise access_denied(dataset) from None
        self._check_config(description)
        return query, description, state.metadata(description)

    def _stage(self, engine: str, stage: str) -> Any:
        """Time a lifecycle stage for the ``lomas_query_stage`` observers."""
        return timed_stage(self.state.plugins.pm.hook.lomas_query_stage, engine, stage)

    def _refused(self, engine: str, exc: LomasError) -> None:
        try:
            # The engine name comes from the request: only an enabled one is passed on as is.
            name = engine if engine in self.state.plugins.engines else "other"
            self.state.plugins.pm.hook.lomas_query_refused(engine=name, code=exc.code)
        except Exception:  # noqa: BLE001 - observers must not break queries
            log.exception("a lomas_query_refused hook failed")

    def _task(self, op: str, prepared_engine: Engine, query: Any, info: DatasetInfo,
              **extra: Any) -> dict[str, Any]:
        return {"op": op, "engine": self._engine_name(prepared_engine), "query": query,
                "info": info.model_dump(mode="json"), **extra}

    async def _in_worker(self, msg: dict[str, Any], timeout: float) -> Any:
        pool = self.state.pool
        assert pool is not None
        # Not abandoned on cancel: the thread returns once the worker answered or was killed.
        return await anyio.to_thread.run_sync(pool.call, msg, timeout)

    async def _cost(self, engine: Engine, query: Any, info: DatasetInfo) -> Budget:
        """The engine's exact cost rounded up to the charge precision (never below the cost)."""
        return (await self._exact_cost(engine, query, info)).rounded_up()

    async def _exact_cost(self, engine: Engine, query: Any, info: DatasetInfo) -> Budget:
        limit = self.state.config.limits.cost_timeout_seconds
        if self.state.pool is not None:
            return await self._cost_in_worker(engine, query, info, limit)
        try:
            with anyio.fail_after(limit):
                return await anyio.to_thread.run_sync(engine.cost, query, info, abandon_on_cancel=True)
        except TimeoutError:
            raise InvalidQuery(
                f"estimating this query's privacy cost took longer than {limit:g} seconds; "
                "simplify the query (fewer statistics, groups or nesting)") from None

    async def _cost_in_worker(self, engine: Engine, query: Any, info: DatasetInfo,
                              limit: float) -> Budget:
        msg = self._task("cost", engine, query, info)
        key = self.costs.key(msg)
        known = self.costs.get(key)
        if known is not None:
            return known
        try:
            value = await self._in_worker(msg, limit)
        except WorkerTimeout:
            raise InvalidQuery(
                f"estimating this query's privacy cost took longer than {limit:g} seconds; "
                "simplify the query (fewer statistics, groups or nesting)") from None
        except WorkerLost as exc:
            log.warning("cost estimation on '%s' lost its worker: %s", info.name, exc.reason)
            raise QueryFailed(f"{WORKER_LOST} while estimating the cost; nothing was charged",
                              reason="worker_lost") from None
        except WorkerError as exc:
            if exc.lomas is not None:  # InvalidQuery and the like: researcher-facing by contract
                raise StoredError(exc.lomas) from None
            log.warning("cost estimation on '%s' failed in the engine: %s", info.name, exc.where)
            raise QueryFailed("estimating the query's cost failed; nothing was charged") from None
        cost = Budget.of(value["epsilon"], value["delta"])
        self.costs.put(key, cost)
        return cost

    def _engine_name(self, engine: Engine) -> str:
        for name, candidate in self.state.plugins.engines.items():
            if candidate is engine:
                return name
        return engine.name

    async def cost(self, user: User, dataset: str, body: CostRequest) -> Budget:
        """The cost of a query from public metadata only; never loads data, never charges."""
        return (await self._prepare(user, dataset, body)).cost

    async def _run(self, prepared: _Prepared, data: DataHandle, *, timed: bool = False,
                   record: ArchiveRecord | None = None) -> tuple[Any, RawJSON | None]:
        """Run the mechanism once, with the configured timeout; validate the result is JSON.

        Returns the result and, from a worker, its JSON text (sent on as is). With the pool and a
        ``record``, a success is archived in the same thread hop as the run. ``timed`` reports
        the ``run`` stage.
        """
        timeout = self.state.config.limits.query_timeout_seconds
        if self.state.pool is not None:
            # Not abandoned on cancel: the thread returns once the worker answered or was killed.
            return await anyio.to_thread.run_sync(
                lambda: self._run_in_worker(prepared, data, timed=timed, record=record))
        engine_name = self._engine_name(prepared.engine)
        stage = self._stage(engine_name, "run") if timed else contextlib.nullcontext()

        def run() -> Any:
            result = prepared.engine.run(prepared.query, data, prepared.info)
            json.dumps(result, allow_nan=False)
            return result

        with stage, anyio.fail_after(timeout):
            return await anyio.to_thread.run_sync(run, abandon_on_cancel=True), None

    def _run_in_worker(self, prepared: _Prepared, data: DataHandle, *, timed: bool = False,
                       record: ArchiveRecord | None = None) -> tuple[Any, RawJSON]:
        """Blocking, with the pool: :meth:`_run`'s work (a timeout raises TimeoutError)."""
        pool = self.state.pool
        assert pool is not None
        timeout = self.state.config.limits.query_timeout_seconds
        engine_name = self._engine_name(prepared.engine)
        stage = self._stage(engine_name, "run") if timed else contextlib.nullcontext()
        ref: dict[str, Any]
        if isinstance(data, SourceHandle):  # the worker opens (and keeps) its own session
            ref = {"source": prepared.description.adapter,
                   "options": prepared.description.options,
                   "dataset": data.dataset, "version": data.version}
        else:
            assert data.path is not None
            ref = {"path": self.state.cache.ensure_file(data), "dataset": data.dataset,
                   "version": data.version}
        msg = self._task("run", prepared.engine, prepared.query, prepared.info, data=ref)
        with stage:
            try:
                value = pool.call(msg, timeout)
            except WorkerTimeout:
                raise TimeoutError from None
        self.state.cache.note_growth(data, int(value["nbytes"]))
        text = value["json"]
        result = json.loads(text)
        if record is not None:
            self._archive(record, "success", result, None)
        return result, RawJSON(text)

    def _source_handle(self, source: SqlSource, prepared: _Prepared) -> SourceHandle:
        """The dataset on its push-down source: its version (reachability, refunded when it
        fails) and, with engines in threads, the open session (workers open their own)."""
        description = prepared.description
        try:
            version = source.version(description.options) or ""
        except DatasetUnavailable as exc:
            reason = exc.message.removeprefix("dataset '?': ")
            raise DatasetUnavailable(f"dataset '{description.name}': {reason}",
                                     touched=False) from None
        handle = SourceHandle(description.name, version, None)  # type: ignore[arg-type]
        if self.state.pool is None:
            key = target_key(description.name, description.adapter, description.options,
                             prepared.info.metadata, version)
            handle.target = self.targets.get(key, source, description.name,
                                             description.options, prepared.info.metadata)
        return handle

    # -- the query endpoint ------------------------------------------------------------------------
    async def query(self, user: User, dataset: str, body: QueryRequest,
                    idempotency_key: str | None) -> dict[str, Any]:
        """Answer ``POST /query``; raises LomasError subclasses for every refusal or failure."""
        if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
            raise InvalidRequest(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
        with self.state.inflight.slot(user.name):
            if body.dummy is not None:
                return await self._dummy(user, dataset, body)
            # Grant check, replay lookup, dataset and metadata: one blocking step, in that order.
            try:
                looked = await run_in_threadpool(self._look_up_query, user, dataset, body,
                                                 idempotency_key)
            except LomasError as exc:
                self._refused(body.engine, exc)
                raise
            if isinstance(looked, dict):  # the stored outcome of an earlier request
                return looked
            if isinstance(looked, _Replayed):
                raise looked.error
            query, description, metadata = looked
            try:
                prepared = await self._costed(self.state.engine(body.engine), query, description,
                                              metadata, body.engine)
            except LomasError as exc:
                self._refused(body.engine, exc)
                raise
            # Once charged, the outcome must be archived even if the request task is cancelled
            # (client gone, shutdown): shield the charge-run-archive section.
            with anyio.CancelScope(shield=True):
                answer = await self._charged(user, dataset, body, prepared, idempotency_key)
            return answer

    async def _dummy(self, user: User, dataset: str, body: QueryRequest) -> dict[str, Any]:
        assert body.dummy is not None
        limit = self.state.config.limits.max_dummy_rows
        if body.dummy.rows > limit:
            raise InvalidRequest(f"dummy.rows must be at most {limit}")
        prepared = await self._prepare(user, dataset, body)
        try:
            if self.state.pool is not None:  # generated and run in the worker
                msg = self._task("dummy", prepared.engine, prepared.query, prepared.info,
                                 rows=body.dummy.rows, seed=body.dummy.seed)
                try:
                    value = await self._in_worker(msg, self.state.config.limits.query_timeout_seconds)
                except WorkerTimeout:
                    raise TimeoutError from None
                result = json.loads(value["json"])
            else:
                data = await run_in_threadpool(dummy_handle, prepared.info.metadata,
                                               body.dummy.rows, body.dummy.seed, dataset=dataset)
                result, _ = await self._run(prepared, data)
        except TimeoutError:
            raise QueryTimeout("the query ran past the time limit on the dummy dataset; "
                               "nothing was charged") from None
        except WorkerLost as exc:
            log.info("dummy query on '%s' with %s lost its worker: %s", dataset, body.engine,
                     exc.reason)
            raise QueryFailed(f"{WORKER_LOST} on the dummy dataset; nothing was charged",
                              reason="worker_lost") from None
        except WorkerError as exc:
            log.info("dummy query on '%s' with %s failed: %s", dataset, body.engine, exc.where)
            if exc.memory:
                raise QueryFailed(f"{_out_of_memory(self.state)} on the dummy dataset; nothing "
                                  "was charged", reason="worker_memory") from None
            raise QueryFailed("the query failed on the dummy dataset; nothing was charged") from None
        except Exception as exc:  # noqa: BLE001 - engine internals stay server-side
            log.info("dummy query on '%s' with %s failed: %s", dataset, body.engine, _where(exc))
            raise QueryFailed("the query failed on the dummy dataset; nothing was charged") from None
        return {"query_id": None, "engine": body.engine, "dummy": True, "result": result,
                "epsilon": 0.0, "delta": 0.0, "remaining": None}

    def _look_up_query(self, user: User, dataset: str, body: QueryRequest,
                       key: str | None) -> Any:
        """Blocking: the grant check, then the replay of an earlier request with ``key`` (its
        response), else what :meth:`_look_up` returns."""
        self._grant(user, dataset)
        if key is not None:
            try:
                replay = self._replay(user, dataset, body, key)
            except LomasError as exc:  # a replayed outcome, not a refusal of this request
                return _Replayed(exc)
            if replay is not None:
                return replay
        return self._look_up(user, dataset, body, False)

    def _replay(self, user: User, dataset: str, body: QueryRequest,
                key: str) -> dict[str, Any] | None:
        """The stored outcome of an earlier request with this key, or None when there is none
        (blocking)."""
        record = self.state.store.find_by_idempotency_key(user.name, key)
        if record is None:
            return None
        if (record.engine, record.dataset, record.request) != (body.engine, dataset, body.query):
            raise IdempotencyConflict(
                "this Idempotency-Key was already used for a different request; use a new key")
        if record.status == "pending":
            raise QueryInProgress("a request with this Idempotency-Key is still running; retry later")
        if record.status == "success":
            remaining = record.remaining
            if remaining is None:
                grant = self.state.store.get_grant(user.name, dataset)
                remaining = grant.remaining if grant is not None else None
            return self._response(record, remaining)
        if record.status == "released":
            raise DatasetUnavailable(
                "the dataset was unavailable for this request and nothing was charged; "
                "send the query again with a new Idempotency-Key")
        raise StoredError(record.error or QueryFailed().to_dict()["error"])

    @staticmethod
    def _response(record: ArchiveRecord, remaining: Budget | None,
                  raw_result: RawJSON | None = None) -> dict[str, Any]:
        """The answer, for :class:`~lomas_core.server.responses.LomasJSON`: budgets as exact
        decimals; ``raw_result`` (the worker's encoding of ``record.result``) embedded as is."""
        return {"query_id": record.id, "engine": record.engine, "dummy": False,
                "result": raw_result if raw_result is not None else record.result,
                "epsilon": record.cost.epsilon, "delta": record.cost.delta,
                "remaining": budget_json(remaining) if remaining is not None else None}

    def _notify(self, record: ArchiveRecord) -> None:
        try:
            self.state.plugins.pm.hook.lomas_query_completed(record=record)
        except Exception:  # noqa: BLE001 - observers must not break queries
            log.exception("a lomas_query_completed hook failed")

    def _archive(self, record: ArchiveRecord, status: str, result: Any,
                 body: dict[str, Any] | None) -> None:
        """Store the outcome (blocking); a store failure is logged, the record stays pending."""
        try:
            with self._stage(record.engine, "archive"):
                self.state.store.complete(record.id, status,  # type: ignore[arg-type]
                                          result=result, error=body)
        except Exception:  # noqa: BLE001 - the charge is made; keep the record pending for audit
            log.exception("could not archive the outcome of query %s", record.id)

    def _archived(self, record: ArchiveRecord, status: str, result: Any,
                  body: dict[str, Any] | None) -> ArchiveRecord:
        done = record.model_copy(update={"status": status, "result": result, "error": body,
                                         "completed_at": utcnow()})
        self._notify(done)
        return done

    async def _finish(self, record: ArchiveRecord, status: str, *, result: Any = None,
                      error: LomasError | None = None) -> ArchiveRecord:
        body = error.to_dict()["error"] if error is not None else None
        await run_in_threadpool(self._archive, record, status, result, body)
        return self._archived(record, status, result, body)

    async def _load_failed(self, record: ArchiveRecord, dataset: str, exc: Exception,
                           reads: DataReads) -> LomasError:
        """Refund or keep the charge of a failed load; the one place that decides.

        Refunded exactly when no private content had been read (a missing file, an unreachable
        source, a configuration refused at load time); kept otherwise, with ``charged_failure``.
        An adapter that says it had read content (``touched``) is believed.
        """
        read = reads.happened or (isinstance(exc, DatasetUnavailable) and exc.touched)
        if isinstance(exc, LomasError):
            reason = exc.message
        else:  # an adapter bug: hide the details from the researcher
            log.error("loading dataset '%s' failed: %s", dataset, _where(exc))
            reason = f"dataset '{dataset}' could not be loaded"
        if not read:
            if isinstance(exc, LomasError) and not isinstance(exc, DatasetUnavailable):
                # e.g. InvalidRequest: the path left adapters.local.allowed_dirs meanwhile
                log.error("loading dataset '%s' was refused before reading: %s", dataset, reason)
                reason = (f"dataset '{dataset}' cannot be read with this server's configuration "
                          "(an administrator must fix it)")
            try:
                await run_in_threadpool(self.state.store.release, record.id)
            except Exception:  # noqa: BLE001
                log.exception("could not release query %s", record.id)
            self._notify(record.model_copy(update={"status": "released", "completed_at": utcnow()}))
            return DatasetUnavailable(f"{reason}; nothing was charged")
        failure = ChargedFailure(f"{reason}; the data was read, so its cost stays charged")
        await self._finish(record, "failed", error=failure)
        return failure

    async def _charged(self, user: User, dataset: str, body: QueryRequest, prepared: _Prepared,
                       key: str | None) -> dict[str, Any]:
        state = self.state
        record = ArchiveRecord(user=user.name, dataset=dataset, engine=body.engine,
                               request=body.query, cost=prepared.cost, idempotency_key=key)
        reads = DataReads()

        def charge_and_load() -> tuple[Budget, DataHandle | None, Exception | None]:
            """Blocking, one thread hop: the atomic charge, then the data load (its failure is
            returned, to be decided by :meth:`_load_failed`)."""
            with self._stage(body.engine, "charge"):
                charged = state.store.charge(record)
            # From here on the cost is charged: every path completes (or releases) the record.
            try:
                adapter = state.adapter(prepared.description)
                loaded: DataHandle
                with self._stage(body.engine, "load"):
                    if isinstance(adapter, SqlSource) and prepared.info.dialect is not None:
                        loaded = reads.run(self._source_handle, adapter, prepared)
                    else:
                        loaded = reads.run(state.cache.get, prepared.description, adapter,
                                           prepared.info.metadata)
            except Exception as exc:  # noqa: BLE001 - decided from what was read, not the type
                return charged, None, exc
            return charged, loaded, None

        in_worker = state.pool is not None
        ran: tuple[Any, RawJSON] | Exception | None = None

        def charge_load_run() -> tuple[Budget, DataHandle | None, Exception | None]:
            """With the pool, the run and its archive follow in the same thread hop (one hand-off
            less per query); the run's outcome or exception is decided below as before."""
            nonlocal ran
            charged, loaded, error = charge_and_load()
            if in_worker and loaded is not None and error is None:
                try:
                    ran = self._run_in_worker(prepared, loaded, timed=True, record=record)
                except Exception as exc:  # noqa: BLE001 - handled below, like a separate run
                    ran = exc
            return charged, loaded, error

        try:
            remaining, data, load_error = await run_in_threadpool(charge_load_run)
        except IdempotencyConflict as exc:
            if key is None:
                self._refused(body.engine, exc)
                raise
            replay = await run_in_threadpool(self._replay, user, dataset, body, key)
            if replay is None:
                raise
            return replay
        except LomasError as exc:  # budget exceeded, store unavailable: nothing charged
            self._refused(body.engine, exc)
            raise
        if load_error is not None or data is None:
            raise await self._load_failed(record, dataset, load_error or RuntimeError(),
                                          reads) from None
        try:
            if isinstance(ran, Exception):
                raise ran
            result, raw = ran if ran is not None else await self._run(prepared, data, timed=True)
        except TimeoutError:
            timeout = QueryTimeout(
                f"the query ran past {state.config.limits.query_timeout_seconds} seconds; "
                "its cost stays charged")
            await self._finish(record, "failed", error=timeout)
            raise timeout from None
        except WorkerLost as exc:
            log.warning("query %s (%s on '%s') lost its worker: %s", record.id, body.engine,
                        dataset, exc.reason)
            lost = QueryFailed(f"{WORKER_LOST}; its cost stays charged", reason="worker_lost")
            await self._finish(record, "failed", error=lost)
            raise lost from None
        except WorkerError as exc:
            if exc.untouched and exc.lomas is not None:  # a source unreachable, nothing read
                message = str(exc.lomas.get("message", f"dataset '{dataset}' is unavailable"))
                raise await self._load_failed(record, dataset, DatasetUnavailable(message),
                                              DataReads()) from None
            log.warning("query %s (%s on '%s') failed: %s", record.id, body.engine, dataset,
                        exc.where)
            failed = (QueryFailed(f"{_out_of_memory(state)}; its cost stays charged",
                                  reason="worker_memory") if exc.memory else QueryFailed())
            await self._finish(record, "failed", error=failed)
            raise failed from None
        except Exception as exc:  # noqa: BLE001 - engine internals stay server-side
            # The message may quote data; it goes to DEBUG only, the type and place to WARNING.
            log.warning("query %s (%s on '%s') failed: %s", record.id, body.engine, dataset,
                        _where(exc))
            log.debug("query %s failure detail", record.id, exc_info=exc)
            failed = QueryFailed()
            await self._finish(record, "failed", error=failed)
            raise failed from None
        if not in_worker:
            if not isinstance(data, SourceHandle):
                state.cache.note_growth(data)
            done = await self._finish(record, "success", result=result)
        else:  # archived by the run's thread
            done = self._archived(record, "success", result, None)
        return self._response(done, remaining, raw)
