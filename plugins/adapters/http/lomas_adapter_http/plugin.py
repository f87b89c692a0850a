"""Entry point module: registers the ``http`` adapter with lomas (httpx is imported lazily)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lomas_core import hookimpl
from lomas_core.adapter import Adapter
from lomas_core.context import PluginContext


@hookimpl
def lomas_make_adapter(name: str, options: Mapping[str, Any], context: PluginContext) -> Adapter | None:
    if name != "http":
        return None
    from lomas_adapter_http.adapter import HttpAdapter

    return HttpAdapter(options, context)
