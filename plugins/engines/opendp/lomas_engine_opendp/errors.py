"""Short, researcher-safe reasons from OpenDP and polars errors raised on public inputs only."""

from __future__ import annotations

__all__ = ["opendp_reason"]

_MAX = 300


def opendp_reason(exc: BaseException) -> str:
    """The library's one-line reason (no backtrace), for errors raised before data is touched.

    Only used at validation/costing time, when the inputs are the payload and public metadata, so
    the text cannot carry private values.
    """
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    variant = getattr(exc, "variant", None)
    line = " ".join(str(message).strip().split())
    if variant and variant not in line:
        line = f"{variant}: {line}"
    return line[:_MAX]
