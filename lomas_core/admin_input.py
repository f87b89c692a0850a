"""One validation of admin input, shared by the CLI and the admin API.

Grants (exact, finite budgets; delta below 1; no booleans) and dataset descriptions (options the
adapter accepts, metadata present and valid, finite bounds) are checked here, so that the API
accepts exactly what ``lomas admin`` accepts.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import ValidationError

from lomas_core.adapter import Adapter
from lomas_core.budget import Budget
from lomas_core.errors import InvalidRequest, LomasError
from lomas_core.metadata import Metadata
from lomas_core.models import DatasetDescription
from lomas_core.validation import validation_message

__all__ = ["budget_value", "check_description", "check_metadata", "grant_budget",
           "smartnoise_delta_warning"]


def budget_value(value: Any) -> str:
    """One budget component as exact decimal text; ValueError for booleans, NaN, infinities,
    negatives and anything that is not a number or a numeric string."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"must be a number, not {type(value).__name__}")
    budget = Budget.of(value, 0)  # ValueError with the reason
    return str(budget.epsilon)


def grant_budget(epsilon: Any, delta: Any = 0) -> Budget:
    """The budget of a grant: exact, finite, non-negative, delta below 1. InvalidRequest otherwise."""
    try:
        budget = Budget.of(budget_value(epsilon), budget_value(delta))
    except ValueError as exc:
        raise InvalidRequest(f"invalid budget: {exc}") from None
    if budget.delta >= 1:
        raise InvalidRequest(f"invalid budget: delta must be below 1, got {budget.delta}")
    return budget


def _non_finite(value: Any, path: str) -> list[str]:
    if isinstance(value, float) and not math.isfinite(value):
        return [path]
    if isinstance(value, str) and value.strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _non_finite(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _non_finite(v, f"{path}[{i}]")]
    return []


def check_metadata(raw: Any, dataset: str) -> Metadata:
    """Valid metadata with finite numbers only (NaN bounds would be stored as null)."""
    data = raw.model_dump(mode="python") if isinstance(raw, Metadata) else raw
    bad = _non_finite(data, "")
    if bad:
        raise InvalidRequest(f"dataset '{dataset}': metadata values must be finite numbers: "
                             + ", ".join(bad[:5]))
    if isinstance(raw, Metadata):
        return raw
    try:
        return Metadata.model_validate(raw)
    except ValidationError as exc:
        raise InvalidRequest(f"dataset '{dataset}': invalid metadata: "
                             + validation_message(exc, default="value")) from None


def check_description(desc: DatasetDescription, adapter: Adapter) -> None:
    """What an admin may store as a dataset: options the adapter accepts and usable metadata
    (inline, or the adapter's metadata document). InvalidRequest naming the problem otherwise."""
    try:
        adapter.check_options(desc.options)
        raw_meta = None if desc.metadata is not None else adapter.load_metadata(desc.name,
                                                                               desc.options)
    except LomasError as exc:
        raise InvalidRequest(f"dataset '{desc.name}': {exc.message}") from None
    except Exception as exc:  # noqa: BLE001 - adapter internals: report the kind only
        raise InvalidRequest(f"dataset '{desc.name}': the adapter refused its options "
                             f"({type(exc).__name__})") from None
    if desc.metadata is not None:
        check_metadata(desc.metadata, desc.name)
        return
    if raw_meta is None:
        raise InvalidRequest(f"dataset '{desc.name}' has no metadata: add 'metadata' (a "
                             "mapping or a YAML file) or the adapter's metadata option")
    check_metadata(raw_meta, desc.name)


def smartnoise_delta_warning(budget: Budget, engines: Any, example: str) -> str | None:
    """Why a grant with delta 0 cannot run SmartNoise-SQL when that engine is enabled (it always
    spends some delta), or None. ``example`` shows how to grant a delta (CLI or API syntax)."""
    if budget.delta or "smartnoise_sql" not in engines:
        return None
    return ("delta is 0, so this grant cannot run SmartNoise-SQL queries (enabled on this server): "
            "they always spend some delta, about 1.5x the delta requested. Grant a delta "
            f"(e.g. {example}); researchers see a query's exact cost with cost().")
