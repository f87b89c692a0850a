"""Structural check of a serialized OpenDP pipeline, done before OpenDP's deserializer runs.

OpenDP's deserializer imports ``opendp.<__module__>`` and calls ``<__function__>(**__kwargs__)``
for every tagged object, and hands ``__expr__``/``__lazyframe__`` blobs to polars (which would
unpickle Python functions in them). So every tag is checked here against an allow-list of OpenDP
constructor modules and names; anything else is refused. Pure Python, no OpenDP import.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lomas_core.api import InvalidQuery

__all__ = ["HONEST_BUT_CURIOUS", "check_pipeline", "parse_pipeline_json"]

#: OpenDP modules whose public constructors a pipeline may name.
_MODULES = frozenset({"measurements", "transformations", "combinators", "domains", "metrics",
                      "measures", "core"})
#: In ``core`` only the accessors OpenDP's chaining operators emit.
_CORE_ALLOWED = re.compile(
    r"^(transformation|measurement)_(input|output)_(domain|metric|measure)$")
_NAME = re.compile(r"^[a-z][A-Za-z0-9_]{0,80}$")
#: Interactive constructors (their output is a queryable, which cannot be sent back) and
#: constructors of user-defined (callable-carrying) objects.
_REFUSED = frozenset({
    "make_adaptive_composition", "then_adaptive_composition", "make_fully_adaptive_composition",
    "then_fully_adaptive_composition", "make_sequential_composition",
    "then_sequential_composition", "make_privacy_filter", "make_sequential_odometer",
    "make_user_transformation", "make_user_measurement", "user_domain", "user_distance",
    "user_divergence", "new_function", "new_privacy_profile", "make_private_expr",
    "make_private_lazyframe", "make_select_private_candidate",
})
#: Constructors that need OpenDP's ``honest-but-curious`` feature.
HONEST_BUT_CURIOUS = frozenset({
    "make_identity", "make_population_amplification", "make_user_transformation",
    "make_user_measurement", "user_domain", "user_distance", "user_divergence", "new_function",
    "new_privacy_profile", "make_private_expr",
})
_TAGS = frozenset({"__function__", "__module__", "__kwargs__", "__version__"})
_FORBIDDEN_TAGS = ("__expr__", "__lazyframe__", "__margin__")
MAX_DEPTH = 120
MAX_NODES = 20_000


def parse_pipeline_json(text: str) -> Any:
    """Plain ``json.loads`` (no object hook): the pipeline as data."""
    try:
        return json.loads(text)
    except RecursionError:
        raise InvalidQuery("the pipeline is nested too deeply") from None
    except ValueError:
        raise InvalidQuery("the pipeline is not valid JSON (expected dp.serialize output)") from None


def check_pipeline(tree: Any, *, honest_but_curious: bool = False) -> None:
    """Refuse anything but OpenDP constructors, plain values and tuples.

    Raises:
        InvalidQuery: naming the refused construct.
    """
    if not isinstance(tree, dict) or "__function__" not in tree:
        raise InvalidQuery("the pipeline must be a serialized OpenDP Measurement (dp.serialize)")
    count = 0
    stack: list[tuple[Any, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH or count > MAX_NODES:
            raise InvalidQuery("the pipeline is too large or nested too deeply")
        if isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
        elif isinstance(node, dict):
            for tag in _FORBIDDEN_TAGS:
                if tag in node:
                    raise InvalidQuery(f"pipelines cannot carry polars objects ({tag}); "
                                       "send polars queries as a 'plan'")
            if "__function__" in node:
                _check_call(node, honest_but_curious)
                stack.append((node.get("__kwargs__", {}), depth + 1))
            elif "__tuple__" in node:
                if set(node) != {"__tuple__"} or not isinstance(node["__tuple__"], list):
                    raise InvalidQuery("malformed tuple in the pipeline")
                stack.append((node["__tuple__"], depth + 1))
            else:
                if any(str(k).startswith("__") for k in node):
                    raise InvalidQuery("the pipeline carries an unknown tagged object")
                stack.extend((v, depth + 1) for v in node.values())
        elif not (node is None or isinstance(node, (str, int, float, bool))):
            raise InvalidQuery("the pipeline carries an unsupported value")


def _check_call(node: dict[str, Any], honest_but_curious: bool) -> None:
    if not set(node) <= _TAGS or "__module__" not in node:
        raise InvalidQuery("malformed constructor in the pipeline")
    module, name = node["__module__"], node["__function__"]
    if not isinstance(module, str) or not isinstance(name, str) or module not in _MODULES \
            or not _NAME.match(name):
        raise InvalidQuery("the pipeline names a function outside OpenDP's constructors; only "
                           "opendp.{measurements,transformations,combinators,domains,metrics,"
                           "measures} are allowed")
    if module == "core" and not _CORE_ALLOWED.match(name):
        raise InvalidQuery(f"the pipeline names opendp.core.{name}, which is not allowed")
    if name in HONEST_BUT_CURIOUS and not honest_but_curious:
        raise InvalidQuery(f"opendp.{module}.{name} needs OpenDP's 'honest-but-curious' feature, "
                           "which this server does not enable")
    if name in _REFUSED:
        raise InvalidQuery(f"opendp.{module}.{name} is not supported by this server "
                           "(interactive or user-defined constructs cannot be run remotely)")
    if not isinstance(node.get("__kwargs__", {}), dict):
        raise InvalidQuery("malformed constructor arguments in the pipeline")
