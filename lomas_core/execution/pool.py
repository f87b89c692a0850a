"""The execution pool: engine work in isolated, limited, replaceable worker processes.

The server process never runs engine code on data or on researcher-supplied structures when the
pool is on: ``cost``, dummy runs and real runs go to a worker over its pipe as plain JSON-able
messages. A worker that passes its deadline is killed with SIGKILL (its CPU use stops at once) and
replaced; one that dies (out of memory, SIGXCPU, a segfault, ``os.abort``) is replaced too. The
caller gets :class:`WorkerTimeout` or :class:`WorkerLost`; what that costs the researcher is decided
by the lifecycle (nothing before the charge, the charge kept after it).

Workers are started with the ``forkserver`` context (never ``fork`` of the threaded server) and
build their engines from the same config, lazily by name.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from typing import Any

from lomas_core.config import Config

__all__ = ["ExecutionPool", "WorkerError", "WorkerLost", "WorkerTimeout", "engine_preload"]

log = logging.getLogger("lomas.execution")


class WorkerTimeout(Exception):
    """The task ran past its deadline; its worker was killed and replaced."""


class WorkerLost(Exception):
    """The worker died during the task (memory or CPU limit, crash); it was replaced."""

    def __init__(self, reason: str, *, sent: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        #: False when the task never reached the worker (it died idle or failed to start).
        self.sent = sent


class WorkerError(Exception):
    """The engine raised in the worker. ``lomas`` is the error body of a LomasError, if any.

    Carries no message of the original exception (it may quote private values): only ``where``
    (type and innermost frame, for the server log) and ``memory`` (a MemoryError).
    """

    def __init__(self, where: str, lomas: dict[str, Any] | None = None, memory: bool = False,
                 untouched: bool = False) -> None:
        super().__init__(where)
        self.where = where
        self.lomas = lomas
        self.memory = memory
        #: A push-down source could not be opened before any content was read (refundable).
        self.untouched = untouched


#: Imported once in the forkserver, so that a new or replacement worker starts warm.
PRELOAD = ["lomas_core.execution.worker", "lomas_core.dummy", "lomas_core.data", "numpy",
           "pyarrow", "pyarrow.ipc"]


def engine_preload(config: Config) -> list[str]:
    """What the forkserver imports for the enabled engines: each engine's module and the heavy
    modules its class declares in ``Engine.preload``."""
    from lomas_core.plugins import load_classes, plugin_modules

    modules = plugin_modules("engine", config.engines)
    try:
        classes = load_classes("engine", config.engines)
    except Exception:  # noqa: BLE001 - the worker reports a broken plugin when it builds it
        return modules
    for cls in classes.values():
        declared = getattr(cls, "preload", ())
        modules.extend(m for m in declared if isinstance(m, str) and m not in modules)
    return modules


def _context(preload: list[str]) -> Any:
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    # Takes effect when the forkserver starts (the first pool of this process); later pools in the
    # same process (tests) share it and import what it lacks themselves.
    ctx.set_forkserver_preload(PRELOAD + preload)
    return ctx


class _Process:
    """One worker process and the server's end of its pipe."""

    def __init__(self, pool: ExecutionPool) -> None:
        from lomas_core.execution.worker import worker_main

        ctx = _context(pool.preload)
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(
            target=worker_main, name="lomas-worker", daemon=True,
            args=(child, pool.config_json, pool.sys_path, pool.memory_mb, pool.cpu_seconds,
                  os.getpid(), pool.threads))
        self.proc.start()
        child.close()
        self.ready = False
        self.start_timeout = pool.start_timeout

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def _exit_reason(self) -> str:
        self.proc.join(timeout=1.0)
        code = self.proc.exitcode
        if code is None:
            return "the worker stopped answering"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            if -code == signal.SIGXCPU:
                return f"the worker reached its CPU time limit ({name})"
            return f"the worker was killed by {name}"
        return f"the worker exited with code {code}"

    def _await_ready(self) -> None:
        if not self.conn.poll(self.start_timeout):
            self.kill()
            raise WorkerLost("the worker did not start in time", sent=False)
        try:
            status, detail = self.conn.recv()
        except (EOFError, OSError):
            raise WorkerLost(self._exit_reason(), sent=False) from None
        if status != "ready":
            self.kill()
            raise WorkerLost(f"the worker could not build its engines: {detail}", sent=False)
        self.ready = True

    def exchange(self, msg: dict[str, Any], timeout: float) -> Any:
        """Send one task and wait for its reply (blocking)."""
        if not self.ready:
            self._await_ready()
        if not self.alive():
            raise WorkerLost(self._exit_reason(), sent=False)
        try:
            self.conn.send(msg)
        except (OSError, EOFError):
            raise WorkerLost(self._exit_reason(), sent=False) from None
        if not self.conn.poll(timeout):
            self.kill()
            raise WorkerTimeout()
        try:
            status, value = self.conn.recv()
        except (EOFError, OSError):
            raise WorkerLost(self._exit_reason()) from None
        if status == "ok":
            return value
        raise WorkerError(value.get("where", "?"), value.get("lomas"), bool(value.get("memory")),
                          bool(value.get("untouched")))

    def alive(self) -> bool:
        return self.proc.is_alive()

    def kill(self) -> None:
        if self.proc.pid is not None and self.proc.exitcode is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.join(timeout=5.0)
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, EOFError):
            pass
        self.proc.join(timeout=2.0)
        if self.proc.exitcode is None:
            self.kill()
        else:
            self.conn.close()


class ExecutionPool:
    """``workers`` processes; each task takes an idle one, or waits for one (blocking calls).

    Call :meth:`call` from a worker thread of the server (the lifecycle does, with anyio).
    """

    def __init__(self, config: Config) -> None:
        execution = config.execution
        self.size = execution.worker_count()
        #: Threads each worker's engines may use (``execution.threads_per_worker``).
        self.threads = execution.thread_count()
        self.memory_mb = execution.memory_mb
        self.cpu_seconds = execution.cpu_seconds
        self.start_timeout = execution.start_timeout_seconds
        self.config_json = config.model_dump_json()
        self.sys_path = list(sys.path)
        self.preload = engine_preload(config)
        self._idle: queue.Queue[_Process] = queue.Queue()
        self._all: set[_Process] = set()
        self._lock = threading.Lock()
        self._closed = False
        #: Counters for tests and metrics.
        self.replaced = 0
        self.tasks = 0
        #: Workers running a task now, and workers killed or lost by cause (for metrics).
        self.busy = 0
        self.kills: dict[str, int] = {}

    def start(self) -> None:
        """Start every worker (non-blocking: each warms up in the background)."""
        for _ in range(self.size):
            self._idle.put(self._spawn())

    def _spawn(self) -> _Process:
        proc = _Process(self)
        with self._lock:
            self._all.add(proc)
        return proc

    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        with self._lock:
            return sorted(p.pid for p in self._all if p.pid is not None and p.alive())

    def call(self, msg: dict[str, Any], timeout: float) -> Any:
        """Run one task in a worker; replaces the worker on timeout or death.

        Raises:
            WorkerTimeout, WorkerLost, WorkerError: see their docs.
        """
        for _ in range(2):  # a task that never reached a worker may go to a fresh one, once
            try:
                return self._call_once(msg, timeout)
            except WorkerLost as exc:
                if exc.sent:
                    raise
                log.warning("execution worker unavailable before its task: %s", exc.reason)
                last = exc
        raise last

    def _call_once(self, msg: dict[str, Any], timeout: float) -> Any:
        if self._closed:
            raise WorkerLost("the server is shutting down")
        proc = self._idle.get()
        healthy = True
        with self._lock:
            self.busy += 1
        try:
            self.tasks += 1
            return proc.exchange(msg, timeout)
        except WorkerTimeout:
            healthy = False
            self._count_kill("timeout")
            raise
        except WorkerLost:
            healthy = False
            self._count_kill("lost")
            raise
        finally:
            with self._lock:
                self.busy -= 1
            if healthy and proc.alive():
                self._idle.put(proc)
            else:
                self._replace(proc)

    def _count_kill(self, cause: str) -> None:
        with self._lock:
            self.kills[cause] = self.kills.get(cause, 0) + 1

    def ready(self) -> bool:
        """Whether at least one worker process is alive (for the readiness probe)."""
        with self._lock:
            return not self._closed and any(p.alive() for p in self._all)

    def _replace(self, proc: _Process) -> None:
        proc.kill()
        with self._lock:
            self._all.discard(proc)
            self.replaced += 1
        if self._closed:
            return
        log.warning("replacing execution worker %s", proc.pid)
        self._idle.put(self._spawn())

    def close(self) -> None:
        """Stop every worker."""
        self._closed = True
        with self._lock:
            procs = list(self._all)
            self._all.clear()
        for proc in procs:
            proc.stop()
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline and any(p.alive() for p in procs):
            time.sleep(0.01)
