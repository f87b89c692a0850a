"""Bounded work: every size or length a payload can ask for is capped from public metadata.

The cap is ``metadata.rows * max_size_factor`` (engine options), or ``max_size_without_rows`` when
the metadata does not give ``rows``. It applies at cost time, so a payload asking for more is
refused for free, and dummy runs are bounded exactly like real ones.
"""

from __future__ import annotations

from typing import Any

from lomas_core.api import (
    InvalidQuery,
    Metadata,
)

__all__ = ["SIZE_KWARGS", "check_pipeline_sizes", "size_limit"]

#: Constructor arguments (OpenDP 0.14) that set a length, a number of elements or an allocation.
SIZE_KWARGS = frozenset({"size", "size_limit", "leaf_count", "branching_factor", "total_limit",
                         "size_factor", "width", "max_weight", "k", "size_guess",
                         "population_size"})


def size_limit(meta: Metadata, factor: int, without_rows: int) -> int:
    """The largest size or length a query on a dataset with metadata ``meta`` may ask for."""
    if meta.rows is None:
        return without_rows
    return max(meta.rows, 1) * factor


def _too_big(what: str, limit: int) -> InvalidQuery:
    return InvalidQuery(f"{what} is larger than this server allows for this dataset ({limit}: the "
                        "dataset's public row count times the engine's max_size_factor)")


def check_pipeline_sizes(tree: Any, limit: int) -> None:
    """Refuse a serialized pipeline asking for any size, length or list longer than ``limit``.

    ``tree`` has passed :func:`~lomas_engine_opendp.pipeline_check.check_pipeline` (plain JSON
    values and tagged constructor calls only).
    """
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            if len(node) > limit:
                raise _too_big("a list in the pipeline", limit)
            stack.extend(node)
        elif isinstance(node, dict):
            if "__function__" in node:
                kwargs = node.get("__kwargs__") or {}
                name = f"opendp.{node.get('__module__')}.{node.get('__function__')}"
                product = 1
                for key, value in kwargs.items():
                    if key in SIZE_KWARGS and isinstance(value, int) \
                            and not isinstance(value, bool):
                        if value > limit:
                            raise _too_big(f"{name}'s {key} ({value})", limit)
                        if key in ("total_limit", "size_factor"):
                            product *= max(value, 1)
                if product > limit:
                    raise _too_big(f"{name}'s total_limit x size_factor ({product})", limit)
                stack.append(kwargs)
            else:
                stack.extend(node.values())
