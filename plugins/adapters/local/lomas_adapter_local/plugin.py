"""Entry point module: registers the ``local`` adapter with lomas."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lomas_core import hookimpl
from lomas_core.adapter import Adapter
from lomas_core.context import PluginContext


@hookimpl
def lomas_make_adapter(name: str, options: Mapping[str, Any], context: PluginContext) -> Adapter | None:
    if name != "local":
        return None
    from lomas_adapter_local.adapter import LocalAdapter

    return LocalAdapter(options, context)
