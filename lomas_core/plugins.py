"""Finding, loading and building plugins.

Plugins are found through entry points in the groups ``lomas.engines``, ``lomas.adapters``,
``lomas.stores`` and ``lomas.authenticators``; only the names enabled in the config are imported.
Each loaded module is registered with a pluggy :class:`pluggy.PluginManager`, which then builds the
objects through the ``lomas_make_*`` hooks. Built-in plugins (the ``sqlite`` store, the ``token``
authenticator) take the same path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from importlib import metadata as importlib_metadata
from typing import Any, Literal

import pluggy

from lomas_core import hookspecs
from lomas_core.adapter import Adapter
from lomas_core.authenticator import Authenticator
from lomas_core.config import Config
from lomas_core.context import PluginContext
from lomas_core.engine import Engine
from lomas_core.errors import PluginError
from lomas_core.store import BudgetStore

__all__ = [
    "KINDS",
    "LoadedPlugins",
    "PluginInfo",
    "installed_plugins",
    "load_plugins",
    "make_plugin_manager",
    "make_store",
]

Kind = Literal["engine", "adapter", "store", "authenticator"]
KINDS: tuple[Kind, ...] = ("engine", "adapter", "store", "authenticator")
log = logging.getLogger("lomas.plugins")


def _group(kind: Kind) -> str:
    return f"lomas.{kind}s"


@dataclass(frozen=True)
class PluginInfo:
    """One installed plugin name: its kind, distribution and version, and whether it is enabled."""

    kind: str
    name: str
    distribution: str
    version: str
    module: str
    enabled: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "distribution": self.distribution,
                "version": self.version, "module": self.module, "enabled": self.enabled}


def _entry_points(kind: Kind) -> dict[str, importlib_metadata.EntryPoint]:
    found: dict[str, importlib_metadata.EntryPoint] = {}
    for ep in importlib_metadata.entry_points(group=_group(kind)):
        found.setdefault(ep.name, ep)
    return found


def _dist_of(ep: importlib_metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return ("unknown", "unknown")
    return (dist.metadata["Name"], dist.version)


def installed_plugins(config: Config | None = None) -> list[PluginInfo]:
    """Every installed plugin name, without importing any plugin module."""
    enabled: dict[str, set[str]] = {kind: set() for kind in KINDS}
    if config is not None:
        enabled = {"engine": set(config.engines), "adapter": set(config.adapters),
                   "store": {config.store.name}, "authenticator": set(config.authenticators)}
    infos = []
    for kind in KINDS:
        for name, ep in sorted(_entry_points(kind).items()):
            dist, version = _dist_of(ep)
            infos.append(PluginInfo(kind, name, dist, version, ep.value, name in enabled[kind]))
    return infos


def make_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def _import(pm: pluggy.PluginManager, kind: Kind, name: str) -> None:
    eps = _entry_points(kind)
    ep = eps.get(name)
    if ep is None:
        installed = ", ".join(sorted(eps)) or "none"
        raise PluginError(f"{kind} '{name}' is not available; installed: {installed}")
    try:
        module = ep.load()
    except Exception as exc:  # noqa: BLE001 - report any import failure with its cause
        dist, _ = _dist_of(ep)
        raise PluginError(
            f"{kind} plugin '{name}' (from {dist}) failed to import: "
            f"{type(exc).__name__}: {exc}") from exc
    if not pm.is_registered(module):
        pm.register(module, name=f"{ep.value}")


@dataclass
class LoadedPlugins:
    """The plugin objects a server (or an admin command) works with."""

    pm: pluggy.PluginManager
    context: PluginContext
    store: BudgetStore
    engines: dict[str, Engine] = field(default_factory=dict)
    adapters: dict[str, Adapter] = field(default_factory=dict)
    #: In the config's order: the order they are tried in.
    authenticators: dict[str, Authenticator] = field(default_factory=dict)

    def close(self) -> None:
        objs: list[Engine | Adapter | BudgetStore | Authenticator] = [
            *self.engines.values(), *self.adapters.values(), *self.authenticators.values()]
        if self.store is not None:
            objs.append(self.store)
        for obj in objs:
            try:
                obj.close()
            except Exception:  # noqa: BLE001 - shutdown is best effort
                log.exception("closing %s failed", obj)


def _build(pm: pluggy.PluginManager, kind: Kind, name: str, options: dict[str, Any],
           context: PluginContext) -> Any:
    hook = getattr(pm.hook, f"lomas_make_{kind}")
    try:
        obj = hook(name=name, options=options, context=context)
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(f"{kind} '{name}' could not be started: {type(exc).__name__}: {exc}") from exc
    if obj is None:
        raise PluginError(f"{kind} plugin '{name}' is installed but did not build a {kind} named '{name}'")
    return obj


def make_store(config: Config, pm: pluggy.PluginManager | None = None,
               context: PluginContext | None = None, *, create: bool = False) -> BudgetStore:
    """Import the configured store plugin and build the store (used by admin commands too).

    Without ``create`` a missing or empty store is refused (ConfigError): creating one is an
    explicit step (``lomas admin init``), never a side effect of starting a server.
    """
    pm = pm or make_plugin_manager()
    context = context or PluginContext(config)
    if create and not context.create_store:
        context = replace(context, create_store=True)
    _import(pm, "store", config.store.name)
    store: BudgetStore = _build(pm, "store", config.store.name, dict(config.store.options), context)
    return store


def load_plugins(config: Config, *, with_store: bool = True) -> LoadedPlugins:
    """Import every enabled plugin, register it, and build the engines, adapters, store and
    authenticators.

    Raises:
        PluginError: a name that is not installed (listing what is), a module that fails to
            import (with the cause), or a plugin that builds nothing.
    """
    pm = make_plugin_manager()
    context = PluginContext(config)
    for name in config.engines:
        _import(pm, "engine", name)
    for name in config.adapters:
        _import(pm, "adapter", name)
    for name in config.authenticators:
        _import(pm, "authenticator", name)
    store = make_store(config, pm, context) if with_store else None
    loaded = LoadedPlugins(pm=pm, context=context, store=store)  # type: ignore[arg-type]
    for name, options in config.engines.items():
        loaded.engines[name] = _build(pm, "engine", name, dict(options), context)
    for name, options in config.adapters.items():
        # An adapter reads only the secrets scoped to it (never bootstrap_admin's or the store's).
        loaded.adapters[name] = _build(pm, "adapter", name, dict(options), context.for_adapter(name))
    for name, options in config.authenticators.items():
        loaded.authenticators[name] = _build(pm, "authenticator", name, dict(options), context)
    return loaded
