"""Building one installed plugin directly in a test, exactly as the core would."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from lomas_core.config import Config
from lomas_core.context import PluginContext
from lomas_core.plugin_base import PluginBase
from lomas_core.plugins import KINDS, build_plugin, entry_point_name

__all__ = ["build"]

P = TypeVar("P", bound=PluginBase)


def build(cls: type[P], options: Mapping[str, Any] | None = None, *,
          config: Config | None = None) -> P:
    """``cls`` built under its entry-point name: options validated against ``cls.Options``
    (ConfigError on a mistake), ``create`` called, ``name`` set. An adapter gets the context the
    core gives it: only the secrets of ``config`` scoped to it."""
    [kind] = [k.name for k in KINDS.values() if issubclass(cls, k.base)]
    name = entry_point_name(kind, cls)
    context = PluginContext(config or Config(adapters={}))
    if kind == "adapter":
        context = context.for_adapter(name)
    return build_plugin(kind, name, cls, options, context)
