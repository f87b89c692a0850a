"""Entry point module: registers the ``postgresql`` source with lomas (no heavy imports here)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lomas_core import hookimpl
from lomas_core.adapter import Adapter
from lomas_core.context import PluginContext

__all__ = ["lomas_make_adapter"]


@hookimpl
def lomas_make_adapter(name: str, options: Mapping[str, Any], context: PluginContext) -> Adapter | None:
    if name != "postgresql":
        return None
    from lomas_source_postgresql.source import PostgresSource

    return PostgresSource(options, context)
