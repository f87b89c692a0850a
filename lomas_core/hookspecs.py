"""Hook specifications: the whole contract between the core and its plugins.

A plugin is a module registered with pluggy under the project name ``lomas``. It is found through
an entry point in one of the groups ``lomas.engines``, ``lomas.adapters``, ``lomas.stores`` or
``lomas.authenticators``; the
entry point's name is the short name admins write in the config, and its value is the module
holding the ``@hookimpl`` functions. Only enabled plugins are imported. A plugin module must stay
cheap to import: import heavy libraries inside the hook, when the object is built.

Example::

    from lomas_core import hookimpl

    @hookimpl
    def lomas_make_engine(name, options, context):
        if name != "myengine":
            return None
        from my_pkg.engine import MyEngine  # heavy imports happen here
        return MyEngine(options, context)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from lomas_core.adapter import Adapter
    from lomas_core.authenticator import Authenticator
    from lomas_core.context import PluginContext
    from lomas_core.engine import Engine
    from lomas_core.models import ArchiveRecord
    from lomas_core.store import BudgetStore

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "lomas"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec(firstresult=True)
def lomas_make_engine(name: str, options: Mapping[str, Any], context: PluginContext) -> Engine | None:
    """Build the DP engine called ``name``.

    Runs once at start-up for every engine enabled in the config's ``engines`` section.

    :param name: the short name the admin enabled (the entry point's name).
    :param options: that engine's options from the config (the plugin validates them).
    :param context: the server's configuration, secrets and logger.
    :return: an :class:`~lomas_core.engine.Engine`, or None when this plugin does not provide
        ``name``. First result: the first non-None answer is used.
    """


@hookspec(firstresult=True)
def lomas_make_adapter(name: str, options: Mapping[str, Any],
                       context: PluginContext) -> Adapter | None:
    """Build the data adapter called ``name``.

    Runs once at start-up (and in admin commands that check datasets) for every adapter enabled in
    the config's ``adapters`` section.

    :param name: the adapter's short name.
    :param options: that adapter's options from the config (allowed directories, timeouts, ...).
    :param context: the server's configuration, secrets and logger.
    :return: an :class:`~lomas_core.adapter.Adapter`, or None when this plugin does not provide
        ``name``. First result.
    """


@hookspec(firstresult=True)
def lomas_make_store(name: str, options: Mapping[str, Any],
                     context: PluginContext) -> BudgetStore | None:
    """Build the budget store called ``name`` (the config's ``store.name``).

    Runs once at start-up and in every ``lomas admin`` command. The store should create its schema
    or indexes here and fail with :class:`~lomas_core.errors.ConfigError` naming the host or path
    when the backend is unreachable.

    :param name: the store's short name.
    :param options: the config's ``store.options``.
    :param context: the server's configuration, secrets and logger.
    :return: a :class:`~lomas_core.store.BudgetStore`, or None when this plugin does not provide
        ``name``. First result.
    """


@hookspec(firstresult=True)
def lomas_make_authenticator(name: str, options: Mapping[str, Any],
                             context: PluginContext) -> Authenticator | None:
    """Build the authenticator called ``name``.

    Runs once at start-up for every authenticator enabled in the config's ``authenticators``
    section (tried in that order on every request, see :mod:`lomas_core.authenticator`).

    :param name: the authenticator's short name (``token``, ``oidc``).
    :param options: that authenticator's options from the config (issuer, audience, ...).
    :param context: the server's configuration, secrets and logger.
    :return: an :class:`~lomas_core.authenticator.Authenticator`, or None when this plugin does not
        provide ``name``. First result.
    """


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
