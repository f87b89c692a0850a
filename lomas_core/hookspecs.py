"""Broadcast hooks: what observers hear from the core.

Plugins are classes loaded by name (see :mod:`lomas_core.plugins`); pluggy only carries the
broadcast hooks below, to every registered observer (the ``lomas.plugins`` entry-point group, see
:mod:`lomas_core.observer`) and to the core's own logging, metrics and tracing. Every
implementation is called; results are ignored.

Example::

    from lomas_core.api import Observer, hookimpl

    class Counter(Observer):
        @hookimpl
        def lomas_query_completed(self, record):
            ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from lomas_core.context import PluginContext
    from lomas_core.models import ArchiveRecord

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "lomas"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def lomas_startup(context: PluginContext) -> None:
    """Called once when the server has built every plugin object, before it accepts requests.

    Use it for warm-up work that would otherwise slow the first query. All results are ignored;
    an exception stops start-up.
    """


@hookspec
def lomas_query_completed(record: ArchiveRecord) -> None:
    """Called after a real query's archive record is completed (success, failed or released).

    For observers (metrics, audit exports). Must not block; exceptions are logged and ignored.
    All implementations are called.
    """


@hookspec
def lomas_query_stage(engine: str, stage: str, seconds: float) -> None:
    """Called when a stage of a query's lifecycle ends, successfully or not, in the request's
    context (so an observer can attach it to the current trace).

    ``stage`` is one of ``cost`` (also for cost estimates and dummy queries), ``charge``,
    ``load``, ``run``, ``archive`` (real queries). For observers (metrics, tracing); must be fast;
    exceptions are logged and ignored. All implementations are called.
    """


@hookspec
def lomas_query_refused(engine: str, code: str) -> None:
    """Called when a real query is refused before any charge (``code`` is the error code, e.g.
    ``budget_exceeded`` or ``invalid_query``). For observers; never carries the query text."""
