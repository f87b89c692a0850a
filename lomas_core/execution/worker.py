"""The worker process: builds the engines from the config and runs one task at a time.

A worker receives plain messages on its pipe and answers each with ``("ok", value)`` or
``("error", {...})``. Tasks: ``cost`` (public metadata only), ``run`` (a dataset version mapped from
its Arrow IPC file), ``dummy`` (a dummy dataset generated here from metadata, then run). Errors
carry no traceback and no exception message, except a :class:`~lomas_core.errors.LomasError`
raised by ``cost`` or ``parse`` (those are researcher-facing by contract).

Limits are OS limits set before any engine is imported: ``RLIMIT_AS`` (address space) and
``RLIMIT_CPU`` renewed before each task, so a runaway task dies by SIGXCPU even if the server
missed its deadline.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from collections import OrderedDict
from typing import Any

__all__ = ["worker_main"]

#: Dataset versions a worker keeps mapped with their engine memos (least recently used leave).
MAX_HANDLES = 8


def _where(exc: BaseException) -> str:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    place = f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else ""
    return f"{type(exc).__name__}{place}"


def _set_limits(memory_mb: int) -> None:
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure: Python's MemoryError (pyarrow's too) or a native
    library's own kind (DuckDB's ``OutOfMemoryException``), under the address-space limit."""
    return any(cls is MemoryError or cls.__name__ == "OutOfMemoryException"
               for cls in type(exc).__mro__)


def _renew_cpu(cpu_seconds: int) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = used + cpu_seconds
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


class _Worker:
    def __init__(self, config_json: str) -> None:
        from lomas_core.config import Config
        from lomas_core.context import PluginContext
        from lomas_core.plugins import load_engines

        self.config = Config.model_validate_json(config_json)
        self._context = PluginContext(self.config)
        self.engines: dict[str, Any] = dict(load_engines(self.config, self._context))
        for engine in self.engines.values():
            engine.warmup()
        # What every task needs, imported now rather than inside the first task's deadline.
        import numpy  # noqa: F401
        import pyarrow.ipc  # noqa: F401

        import lomas_core.dummy  # noqa: F401
        import lomas_core.results  # noqa: F401
        self.handles: OrderedDict[str, Any] = OrderedDict()
        #: Push-down sources built on first use, and their open sessions (see lomas_core.source).
        self.sources: dict[str, Any] = {}
        self.targets: Any = None

    def _source_handle(self, ref: dict[str, Any], metadata: Any) -> Any:
        """A push-down dataset's handle: this worker's own open session on its source."""
        from lomas_core.plugins import build_plugin, load_classes
        from lomas_core.source import SourceHandle, TargetCache, target_key

        name = ref["source"]
        source = self.sources.get(name)
        if source is None:
            cls = load_classes("adapter", [name])[name]
            # A source reads only the secrets scoped to it, as in the server.
            source = build_plugin("adapter", name, cls, self.config.adapters[name],
                                  self._context.for_adapter(name))
            self.sources[name] = source
        if self.targets is None:
            self.targets = TargetCache()
        key = target_key(ref["dataset"], name, ref["options"], metadata, ref["version"])
        target = self.targets.get(key, source, ref["dataset"], ref["options"], metadata)
        return SourceHandle(ref["dataset"], ref["version"], target)

    def _handle(self, ref: dict[str, Any]) -> Any:
        """The DataHandle of a dataset version, mapped from its IPC file once per worker."""
        import pyarrow as pa

        from lomas_core.data import DataHandle

        # Versions whose files the server removed (evicted, replaced) are dropped with their memos.
        for path in [p for p in self.handles if p != ref["path"] and not os.path.exists(p)]:
            self.handles.pop(path).close()
        path = ref["path"]
        handle = self.handles.get(path)
        if handle is None:
            table = pa.ipc.open_file(pa.memory_map(path, "r")).read_all()
            handle = DataHandle(ref["dataset"], ref["version"], table)
            handle.path = path
            self.handles[path] = handle
            while len(self.handles) > MAX_HANDLES:
                self.handles.popitem(last=False)[1].close()
        else:
            self.handles.move_to_end(path)
        return handle

    def task(self, msg: dict[str, Any]) -> Any:
        from lomas_core.engine import DatasetInfo

        engine = self.engines[msg["engine"]]
        query = engine.parse(msg["query"])
        info = DatasetInfo.model_validate(msg["info"])
        op = msg["op"]
        if op == "cost":
            return engine.cost(query, info).as_strings()
        if op == "run" and "source" in msg["data"]:
            from lomas_core.errors import DatasetUnavailable

            try:
                data = self._source_handle(msg["data"], info.metadata)
            except DatasetUnavailable as exc:
                exc.details.setdefault("untouched", not exc.touched)
                raise
        elif op == "run":
            data = self._handle(msg["data"])
        elif op == "dummy":
            from lomas_core.dummy import dummy_handle

            data = dummy_handle(info.metadata, msg["rows"], msg["seed"], dataset=info.name)
        else:
            raise ValueError(f"unknown task {op}")
        result = engine.run(query, data, info)
        # Checked here so that a non-JSON result fails like any engine error.
        text = json.dumps(result, allow_nan=False)
        return {"json": text, "nbytes": data.nbytes}


def _die_with_parent() -> None:
    """SIGKILL this worker when its parent (the forkserver, which dies with the server) dies:
    a server killed with ``kill -9`` must not leave a task burning CPU until its limits."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not sys.platform.startswith("linux")


def _watch_server(server_pid: int) -> None:
    """Exit at once when the server process is gone (killed with ``kill -9``), even mid-task."""
    import threading
    import time

    def watch() -> None:
        while _alive(server_pid):
            time.sleep(0.25)
        os._exit(70)

    threading.Thread(target=watch, name="lomas-server-watch", daemon=True).start()


def worker_main(conn: Any, config_json: str, sys_path: list[str], memory_mb: int,
                cpu_seconds: int, server_pid: int = 0, threads: int = 0) -> None:
    """Entry point of a worker process (run by multiprocessing). ``threads``: what this worker's
    engines may use (:func:`lomas_core.execution.threads.worker_threads`), 0 for their default."""
    import gc
    import signal

    from lomas_core.execution.threads import set_worker_threads

    # What the forkserver imported is shared with it and lives as long as this worker: frozen, the
    # collector never scans it, nor writes to its pages (which would copy them into this worker).
    gc.freeze()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when workers stop
    _die_with_parent()
    if server_pid:
        _watch_server(server_pid)
    for entry in reversed(sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    _set_limits(memory_mb)
    if threads > 0:
        set_worker_threads(threads)  # before any engine is built
    try:
        worker = _Worker(config_json)
    except BaseException as exc:  # noqa: BLE001 - report and exit; the server logs it
        conn.send(("failed", _where(exc)))
        return
    # The start-up's garbage goes now; the engines' state stays for the worker's life: frozen too,
    # so that a full collection during a query walks only that query's objects (unfrozen, the
    # first one took over 100 ms of CPU inside a query).
    gc.collect()
    gc.freeze()
    conn.send(("ready", os.getpid()))
    from lomas_core.errors import LomasError

    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        _renew_cpu(cpu_seconds)
        try:
            reply: tuple[str, Any] = ("ok", worker.task(msg))
        except LomasError as exc:
            untouched = bool(getattr(exc, "details", {}).pop("untouched", False))
            reply = ("error", {"lomas": exc.to_dict()["error"], "where": _where(exc),
                               "untouched": untouched})
        except BaseException as exc:  # noqa: BLE001 - no message: it may quote private values
            reply = ("error", {"memory": _out_of_memory(exc), "where": _where(exc)})
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return
