"""Entry point module: registers the ``mongodb`` budget store with lomas."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lomas_core import hookimpl
from lomas_core.context import PluginContext
from lomas_core.store import BudgetStore

__all__ = ["lomas_make_store"]


@hookimpl
def lomas_make_store(name: str, options: Mapping[str, Any],
                     context: PluginContext) -> BudgetStore | None:
    if name != "mongodb":
        return None
    from lomas_store_mongodb.store import MongoStore  # pymongo is imported here, not at load time

    return MongoStore.from_options(options, context)
