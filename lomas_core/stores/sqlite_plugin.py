"""Entry point of the built-in ``sqlite`` store (``lomas.stores: sqlite``).

Stays cheap to import: the store module is imported when the store is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lomas_core.hookspecs import hookimpl

if TYPE_CHECKING:
    from lomas_core.context import PluginContext
    from lomas_core.store import BudgetStore

__all__ = ["lomas_make_store"]


@hookimpl
def lomas_make_store(name: str, options: Mapping[str, Any], context: PluginContext) -> BudgetStore | None:
    """Build the ``sqlite`` store from ``{"path": str, "busy_timeout_seconds": float}``."""
    if name != "sqlite":
        return None
    from lomas_core.stores.sqlite import SQLiteStore, parse_options, recovery_grace
    from lomas_core.tokens import last_used_seconds

    path, timeout = parse_options(options, context.config.resolve_path)
    store = SQLiteStore(path, busy_timeout=timeout, recovery_grace_seconds=recovery_grace(options),
                        create=context.create_store,
                        token_last_used_seconds=last_used_seconds(options, "sqlite"))
    context.logger.info("sqlite store at %s", path)
    return store
