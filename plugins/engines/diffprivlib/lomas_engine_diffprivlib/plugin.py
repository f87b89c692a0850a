"""Entry point module: registers the ``diffprivlib`` engine with lomas (no heavy imports here)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lomas_core import hookimpl
from lomas_core.context import PluginContext
from lomas_core.engine import Engine

__all__ = ["lomas_make_engine"]


@hookimpl
def lomas_make_engine(name: str, options: Mapping[str, Any], context: PluginContext) -> Engine | None:
    if name != "diffprivlib":
        return None
    from lomas_engine_diffprivlib.engine import DiffPrivLibEngine

    return DiffPrivLibEngine(options, context)
