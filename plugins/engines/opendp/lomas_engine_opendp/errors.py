"""Short, researcher-safe reasons from OpenDP and polars errors raised on public inputs only."""

from __future__ import annotations

import re

__all__ = ["opendp_reason", "scrub_paths"]

_MAX = 300
#: Absolute filesystem paths (POSIX, ``~``, Windows drive and UNC), as they appear in library
#: messages (e.g. the location of OpenDP's shared library in a polars plugin error).
_PATH = re.compile(r"""(?<!\w)(?:[A-Za-z]:\\|\\\\|~/|/)[^\s'"`,;:()\[\]{}<>]*""")


def scrub_paths(text: str) -> str:
    """``text`` with every absolute filesystem path replaced by ``<path>``."""
    return _PATH.sub(lambda m: "<path>" if len(m.group(0)) > 1 else m.group(0), text)


def opendp_reason(exc: BaseException) -> str:
    """The library's one-line reason (no backtrace, no server paths), for errors raised before data
    is touched.

    Only used at validation/costing time, when the inputs are the payload and public metadata, so
    the text cannot carry private values.
    """
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    variant = getattr(exc, "variant", None)
    line = " ".join(str(message).strip().split())
    if variant and variant not in line:
        line = f"{variant}: {line}"
    return scrub_paths(line)[:_MAX]
