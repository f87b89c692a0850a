"""Comparing what two servers (one on D, one on D') say: uncharged channels and released structure.

Uncharged answers (metadata, cost, dummy, refusals, errors, status codes) must be identical on D
and D'. Dummy answers carry fresh noise, so only their *shape* is compared (see :func:`shape`).
Charged answers must have the same shape too, except that the keys and row count of a table may
differ when the query was charged a delta (a threshold may hide or show a rare group; the
statistical test then bounds how often).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["compare_exact", "compare_shapes", "normalise", "shape"]

_NUMERIC = ("int", "float")
_VOLATILE = ("query_id",)


def normalise(body: Any) -> Any:
    """A response body without fields that differ on every call whatever the data (query ids)."""
    if isinstance(body, Mapping):
        return {k: normalise(v) for k, v in body.items() if k not in _VOLATILE}
    if isinstance(body, list):
        return [normalise(v) for v in body]
    return body


def _skeleton(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return "#"
    if isinstance(value, Mapping):
        return {str(k): _skeleton(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_skeleton(v) for v in value]
    return value


def shape(result: Any) -> dict[str, Any]:
    """The released structure of a result: type, columns, dtypes, row count and key cells.

    Numeric cells (dtype int or float) are values and masked; other cells are keys and kept.
    """
    if isinstance(result, Mapping) and result.get("type") == "table":
        dtypes = list(result.get("dtypes") or [])
        keyed = [i for i, t in enumerate(dtypes) if t not in _NUMERIC]
        rows = result.get("rows") or []
        keys = sorted("|".join(repr(row[i]) for i in keyed) for row in rows)
        return {"type": "table", "columns": list(result.get("columns") or []), "dtypes": dtypes,
                "rows": len(rows), "keys": keys}
    if isinstance(result, Mapping) and result.get("type") == "value":
        return {"type": "value", "value": _skeleton(result.get("value"))}
    return {"type": type(result).__name__, "value": _skeleton(result)}


def compare_exact(what: str, on_d: tuple[int, Any], on_d_prime: tuple[int, Any]) -> list[str]:
    """Problems when two (status, body) answers differ."""
    (sa, ba), (sb, bb) = on_d, on_d_prime
    if sa != sb:
        return [f"{what}: status {sa} on D but {sb} on D'"]
    if normalise(ba) != normalise(bb):
        return [f"{what}: the answer differs between D and D' ({_diff(normalise(ba), normalise(bb))})"]
    return []


def compare_shapes(what: str, on_d: Any, on_d_prime: Any, *,
                   thresholded: bool) -> tuple[list[str], list[str]]:
    """(problems, notes) when two results' shapes differ; key differences are only notes when
    ``thresholded`` (a charged delta explains them)."""
    a, b = shape(on_d), shape(on_d_prime)
    if a == b:
        return [], []
    if thresholded and a.get("type") == b.get("type") == "table" and \
            (a["columns"], a["dtypes"]) == (b["columns"], b["dtypes"]):
        only_a = sorted(set(a["keys"]) - set(b["keys"]))
        only_b = sorted(set(b["keys"]) - set(a["keys"]))
        return [], [f"{what}: keys differ under a charged threshold (only on D: {only_a[:3]}, "
                    f"only on D': {only_b[:3]})"]
    if a.get("type") == b.get("type") == "table":
        only_b = sorted(set(b["keys"]) - set(a["keys"]))
        only_a = sorted(set(a["keys"]) - set(b["keys"]))
        if only_a or only_b:
            return [f"{what}: released keys differ without a charged threshold (only on D: "
                    f"{only_a[:3]}, only on D': {only_b[:3]})"], []
    return [f"{what}: released structure differs between D and D' ({_diff(a, b)})"], []


def _diff(a: Any, b: Any) -> str:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        keys = [k for k in sorted(set(a) | set(b), key=str) if a.get(k) != b.get(k)]
        if keys:
            k = keys[0]
            return f"{k}: {_short(a.get(k))} vs {_short(b.get(k))}"
    return f"{_short(a)} vs {_short(b)}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
