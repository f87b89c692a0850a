"""The observer contract: a plugin that only listens (metrics, audit exports, alerts).

An observer is a class named by an entry point in the group ``lomas.plugins`` and enabled with one
line in the config's ``plugins`` section (``plugins: {my_observer: {}}``). It needs no engine. The
core validates its ``Options``, builds it like any plugin and registers it with pluggy; its
methods marked ``@hookimpl`` receive the broadcast hooks of :mod:`lomas_core.hookspecs`:

- ``lomas_startup(context)``: once, when every plugin is built (an exception stops start-up);
- ``lomas_query_completed(record)``: after a real query's archive record is final;
- ``lomas_query_stage(engine, stage, seconds)`` and ``lomas_query_refused(engine, code)``.

Rules: hooks must be fast and must not block; they never see query text or private data beyond
the archive record; exceptions in the query hooks are logged and ignored.
"""

from __future__ import annotations

from lomas_core.plugin_base import PluginBase

__all__ = ["Observer"]


class Observer(PluginBase):
    """Base class of observer plugins; implement any of the broadcast hooks with ``@hookimpl``."""
