"""How many threads the engines of this process may use (set by the execution pool per worker).

The pool divides the cores among its workers (``execution.threads_per_worker``, default
``cores // workers``) and each worker sets its share here before it builds its engines. Engines
read it with :func:`worker_threads` (re-exported by :mod:`lomas_core.api`) and pass it to their
libraries (DuckDB's ``threads``); polars reads ``POLARS_MAX_THREADS``, set here too, when it first
starts its pool. Without it two busy workers on two cores would each start a thread per core and
fight over them.
"""

from __future__ import annotations

import os

__all__ = ["ENV", "set_worker_threads", "worker_threads"]

#: The environment variable that carries the count into a worker (and anything it starts).
ENV = "LOMAS_WORKER_THREADS"

#: Libraries that size their thread pools from the environment when they first start one (after
#: the worker set these); an admin's own setting in the server's environment wins.
_LIBRARY_ENV = ("POLARS_MAX_THREADS",)


def worker_threads() -> int | None:
    """The threads this process's engines may use, or ``None`` outside an execution worker (then
    each library keeps its own default: the server runs engines in-process only in development)."""
    raw = os.environ.get(ENV, "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else None


def set_worker_threads(threads: int) -> None:
    """Give this process (a worker, before it imports or builds engines) ``threads`` threads."""
    os.environ[ENV] = str(max(1, int(threads)))
    for name in _LIBRARY_ENV:
        os.environ.setdefault(name, os.environ[ENV])
