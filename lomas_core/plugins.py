"""Finding, checking and building plugins.

A plugin is a class named by an entry point in one of the groups of :data:`KINDS`
(``lomas.engines``, ``lomas.adapters``, ``lomas.stores``, ``lomas.authenticators``,
``lomas.plugins`` for observers). The
entry point's name is the plugin's only name: the one admins write in the config, and the one the
core gives the object. For every name the config enables, the core

1. refuses a name no distribution provides, or one that two distributions claim (one line listing
   what is installed),
2. imports only that class with stevedore's :class:`~stevedore.named.NamedExtensionManager`,
3. checks it subclasses the kind's base class and declares no other name,
4. validates the config section against the class's ``Options`` model,
5. builds it with ``cls.create(options, context)`` and sets its ``name``.

Every failure is a :class:`~lomas_core.errors.PluginError` (or a ConfigError for bad options) with
one clear line. Observers are registered with a pluggy manager that broadcasts the hooks of
:mod:`lomas_core.hookspecs` (start-up, query completed, query stages and refusals).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import metadata as importlib_metadata
from typing import Any, TypeVar

import pluggy
from pydantic import ValidationError

from lomas_core import hookspecs
from lomas_core.adapter import Adapter
from lomas_core.authenticator import Authenticator
from lomas_core.config import Config
from lomas_core.context import PluginContext
from lomas_core.engine import Engine
from lomas_core.errors import PluginError
from lomas_core.observer import Observer
from lomas_core.plugin_base import PluginBase
from lomas_core.store import BudgetStore
from lomas_core.validation import validation_message

__all__ = [
    "KINDS",
    "Kind",
    "LoadedPlugins",
    "PluginInfo",
    "build_plugin",
    "entry_point_name",
    "installed_plugins",
    "load_classes",
    "load_engines",
    "load_plugins",
    "make_plugin_manager",
    "make_store",
    "plugin_modules",
]

log = logging.getLogger("lomas.plugins")
P = TypeVar("P", bound=PluginBase)


@dataclass(frozen=True)
class Kind:
    """One kind of plugin: its entry-point group, base class and config section."""

    name: str
    group: str
    base: type[PluginBase]
    #: Where its options live in the config, for messages (``{}`` is the plugin's name).
    section: str


#: Every kind of plugin, by kind name. A new kind is one line here plus its contract module.
KINDS: dict[str, Kind] = {
    "engine": Kind("engine", "lomas.engines", Engine, "engines.{}"),
    "adapter": Kind("adapter", "lomas.adapters", Adapter, "adapters.{}"),
    "store": Kind("store", "lomas.stores", BudgetStore, "store.options"),
    "authenticator": Kind("authenticator", "lomas.authenticators", Authenticator,
                          "authenticators.{}"),
    "observer": Kind("observer", "lomas.plugins", Observer, "plugins.{}"),
}


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


def _dist_of(ep: importlib_metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return ("unknown", "unknown")
    return (dist.metadata["Name"], dist.version)


def _entry_points(kind: Kind) -> dict[str, list[importlib_metadata.EntryPoint]]:
    """Every entry point of the kind's group by name; the same target found twice on the path
    (an editable install seen from two directories) counts once."""
    found: dict[str, list[importlib_metadata.EntryPoint]] = {}
    for ep in importlib_metadata.entry_points(group=kind.group):
        same = found.setdefault(ep.name, [])
        if not any(other.value == ep.value and _dist_of(other)[0] == _dist_of(ep)[0]
                   for other in same):
            same.append(ep)
    return found


def _enabled(config: Config) -> dict[str, list[str]]:
    return {"engine": list(config.engines), "adapter": list(config.adapters),
            "store": [config.store.name], "authenticator": list(config.authenticators),
            "observer": list(config.plugins)}


def installed_plugins(config: Config | None = None) -> list[PluginInfo]:
    """Every installed plugin name, without importing any plugin module."""
    enabled = _enabled(config) if config is not None else {}
    infos = []
    for kind in KINDS.values():
        for name, eps in sorted(_entry_points(kind).items()):
            for ep in eps:
                dist, version = _dist_of(ep)
                infos.append(PluginInfo(kind.name, name, dist, version, ep.value,
                                        name in enabled.get(kind.name, ())))
    return infos


def _describe(ep: importlib_metadata.EntryPoint) -> str:
    dist, version = _dist_of(ep)
    return f"{dist} {version} ({ep.value})"


def _check_names(kind: Kind, names: Iterable[str]) -> None:
    """Refuse names nothing provides and names two distributions claim, before importing."""
    eps = _entry_points(kind)
    installed = ", ".join(sorted(eps)) or "none"
    for name in names:
        claims = eps.get(name, [])
        if not claims:
            raise PluginError(f"{kind.name} '{name}' is not available; installed: {installed}")
        if len(claims) > 1:
            raise PluginError(
                f"{kind.name} '{name}' is claimed by {len(claims)} distributions: "
                f"{'; '.join(_describe(ep) for ep in claims)}; uninstall all but one "
                f"(installed {kind.name}s: {installed})")


def _named_manager(kind: Kind, wanted: list[str], checked: list[importlib_metadata.EntryPoint],
                   **callbacks: Any) -> Any:
    """stevedore's named manager over the entry points the core has just checked.

    stevedore keeps entry-point lists per group for the life of the process (and on disk); handing
    it the checked list means it imports exactly what was checked, and sees a plugin installed
    while the process runs (tests).
    """
    from stevedore.named import NamedExtensionManager

    class CheckedManager(NamedExtensionManager):  # type: ignore[type-arg]
        def list_entry_points(self) -> list[importlib_metadata.EntryPoint]:
            return list(checked)

    return CheckedManager(kind.group, wanted, invoke_on_load=False, name_order=True, **callbacks)


def load_classes(kind_name: str, names: Iterable[str]) -> dict[str, type[PluginBase]]:
    """Import the classes of the named plugins of one kind, checked, in the order given."""
    kind = KINDS[kind_name]
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return {}
    _check_names(kind, wanted)
    found = _entry_points(kind)
    failures: list[PluginError] = []

    def failed(_manager: Any, ep: Any, exc: BaseException) -> None:
        # stevedore's cached entry points may not know their distribution; ours do.
        dist = next((_dist_of(e)[0] for e in _entry_points(kind).get(ep.name, [])), "unknown")
        failures.append(PluginError(f"{kind.name} plugin '{ep.name}' (from {dist}) failed to "
                                    f"import: {type(exc).__name__}: {exc}"))

    def missing(names_missing: Iterable[str]) -> None:
        failures.append(PluginError(f"{kind.name} '{', '.join(sorted(names_missing))}' is not "
                                    f"available; installed: {', '.join(sorted(_entry_points(kind)))}"))

    manager = _named_manager(kind, wanted, [found[name][0] for name in wanted],
                             on_load_failure_callback=failed,
                             on_missing_entrypoints_callback=missing)
    if failures:
        raise failures[0]
    classes: dict[str, type[PluginBase]] = {}
    for ext in manager.extensions:
        if ext.name in classes:
            continue
        classes[ext.name] = _check_class(kind, ext.name, ext.plugin, ext.entry_point)
    return classes


def _check_class(kind: Kind, name: str, obj: Any, ep: Any) -> type[PluginBase]:
    where = f"{kind.name} '{name}' ({getattr(ep, 'value', '?')})"
    if not isinstance(obj, type):
        raise PluginError(f"{where} is a {type(obj).__name__}, not a class; an entry point must "
                          f"name a subclass of {kind.base.__name__}")
    if not issubclass(obj, kind.base):
        raise PluginError(f"{where} is not a {kind.base.__name__}")
    declared = obj.__dict__.get("name", "")
    if declared and declared != name:
        raise PluginError(f"{where} declares the name '{declared}'; the entry point's name is the "
                          f"only one (remove 'name' from the class)")
    return obj


def build_plugin(kind_name: str, name: str, cls: type[P], options: Mapping[str, Any] | None,
                 context: PluginContext) -> P:
    """Validate ``options`` against ``cls.Options``, build the object and give it ``name``."""
    kind = KINDS[kind_name]
    where = kind.section.format(name)
    try:
        validated = cls.Options.model_validate(dict(options or {}))
    except ValidationError as exc:
        raise PluginError(f"{where}: {validation_message(exc)}") from None
    try:
        obj = cls.create(validated, context)
    except PluginError:
        raise
    except Exception as exc:  # a ConfigError too: start-up names the plugin that refused
        raise PluginError(f"{kind.name} '{name}' could not be started: "
                          f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(obj, kind.base):
        raise PluginError(f"{kind.name} '{name}': {cls.__name__}.create returned a "
                          f"{type(obj).__name__}, not a {kind.base.__name__}")
    obj.name = name
    return obj


def entry_point_name(kind_name: str, cls: type[PluginBase]) -> str:
    """The entry-point name under which ``cls`` is installed (for tests building one directly)."""
    target = f"{cls.__module__}:{cls.__qualname__}"
    for name, eps in _entry_points(KINDS[kind_name]).items():
        if any(ep.value.replace(" ", "") == target for ep in eps):
            return name
    raise PluginError(f"{cls.__qualname__} is not installed as a {kind_name} (no entry point "
                      f"names {target})")


def plugin_modules(kind_name: str, names: Iterable[str]) -> list[str]:
    """The modules holding the named plugins' classes, without importing them (for preloading)."""
    found = _entry_points(KINDS[kind_name])
    return [found[name][0].module for name in names if found.get(name)]


def make_plugin_manager() -> pluggy.PluginManager:
    """A pluggy manager knowing lomas's broadcast hooks."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


@dataclass
class LoadedPlugins:
    """The plugin objects a server (or an admin command) works with."""

    pm: pluggy.PluginManager
    context: PluginContext
    store: BudgetStore
    engines: dict[str, Engine] = field(default_factory=dict)
    adapters: dict[str, Adapter] = field(default_factory=dict)
    observers: dict[str, Observer] = field(default_factory=dict)
    #: In the config's order: the order they are tried in.
    authenticators: dict[str, Authenticator] = field(default_factory=dict)

    def close(self) -> None:
        objs: list[PluginBase] = [*self.engines.values(), *self.adapters.values(),
                                  *self.observers.values(), *self.authenticators.values()]
        if self.store is not None:
            objs.append(self.store)
        for obj in objs:
            try:
                obj.close()
            except Exception:  # noqa: BLE001 - shutdown is best effort
                log.exception("closing %s failed", obj)


def _build_all(kind_name: str, sections: Mapping[str, Mapping[str, Any]],
               context: PluginContext) -> dict[str, Any]:
    classes = load_classes(kind_name, sections)
    built: dict[str, Any] = {}
    for name, options in sections.items():
        # An adapter reads only the secrets scoped to it (never bootstrap_admin's or the store's).
        ctx = context.for_adapter(name) if kind_name == "adapter" else context
        built[name] = build_plugin(kind_name, name, classes[name], options, ctx)
    return built


def load_engines(config: Config, context: PluginContext | None = None) -> dict[str, Engine]:
    """Build the enabled engines only (an execution worker needs nothing else)."""
    return _build_all("engine", config.engines, context or PluginContext(config))


def make_store(config: Config, pm: pluggy.PluginManager | None = None,
               context: PluginContext | None = None, *, create: bool = False) -> BudgetStore:
    """Build the configured store (used by admin commands too).

    Without ``create`` a missing or empty store is refused (ConfigError): creating one is an
    explicit step (``lomas admin init``), never a side effect of starting a server.
    """
    context = context or PluginContext(config)
    if create and not context.create_store:
        context = replace(context, create_store=True)
    store: BudgetStore = _build_all("store", {config.store.name: config.store.options},
                                    context)[config.store.name]
    return store


def load_plugins(config: Config, *, with_store: bool = True) -> LoadedPlugins:
    """Build the enabled engines, adapters, authenticators, store and observers; register the
    observers' hooks.

    Raises:
        PluginError: a name that is not installed or claimed twice (listing what is installed), a
            module that fails to import (with the cause), a class of the wrong kind.
        PluginError (a ConfigError): options that the plugin's ``Options`` model refuses, or
            an exception while building (with the plugin's name and the cause).
    """
    pm = make_plugin_manager()
    context = PluginContext(config)
    built: list[PluginBase] = []
    try:
        engines = load_engines(config, context)
        built.extend(engines.values())
        adapters: dict[str, Adapter] = _build_all("adapter", config.adapters, context)
        built.extend(adapters.values())
        observers: dict[str, Observer] = _build_all("observer", config.plugins, context)
        built.extend(observers.values())
        authenticators: dict[str, Authenticator] = _build_all("authenticator",
                                                              config.authenticators, context)
        built.extend(authenticators.values())
        store = make_store(config, pm, context) if with_store else None
    except BaseException:
        for obj in built:
            obj.close()
        raise
    for name, observer in observers.items():
        pm.register(observer, name=f"lomas.plugins.{name}")
    return LoadedPlugins(pm=pm, context=context, store=store,  # type: ignore[arg-type]
                         engines=engines, adapters=adapters, observers=observers,
                         authenticators=authenticators)
