"""Entry point module: registers the ``smartnoise_sql`` engine with lomas (no heavy imports here)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lomas_core import hookimpl
from lomas_core.context import PluginContext
from lomas_core.engine import Engine

__all__ = ["PRELOAD", "lomas_make_engine"]

#: Heavy modules the execution pool imports once in its forkserver, before workers fork, so that
#: every worker shares their pages instead of importing its own copy (safe to import before a
#: fork: importing them starts no thread).
PRELOAD = ("duckdb", "snsql", "sqlalchemy", "antlr4", "pandas", "scipy.stats", "opendp.prelude")


@hookimpl
def lomas_make_engine(name: str, options: Mapping[str, Any], context: PluginContext) -> Engine | None:
    if name != "smartnoise_sql":
        return None
    from lomas_engine_smartnoise_sql.engine import SmartnoiseSQLEngine

    return SmartnoiseSQLEngine(options, context)
