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
    (ConfigError on a mistake), ``create`` called, ``name`` set."""
    [kind] = [k.name for k in KINDS.values() if issubclass(cls, k.base)]
    name = entry_point_name(kind, cls)
    config = config or Config(adapters={})
    return build_plugin(kind, name, cls, options, PluginContext(config))
