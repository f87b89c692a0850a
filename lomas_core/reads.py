"""Whether a query's data load read any private content: the one input of refund vs. keep.

The core runs each charged load inside :meth:`DataReads.run`; the shared reader
(:func:`lomas_core.io.read_table`) calls :func:`note_read` before it parses a single byte of
content, and so does anything else that looks at content (the table preparation runs after the
load and counts as read). A failure before that point changed nothing that depends on the data,
so the charge is refunded; after it, the charge stays, whatever exception surfaced.

An adapter that parses content without :mod:`lomas_core.io` must call :func:`note_read` first.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["DataReads", "note_read"]

T = TypeVar("T")

_current: contextvars.ContextVar[DataReads | None] = contextvars.ContextVar("lomas_data_reads",
                                                                              default=None)


class DataReads:
    """Records whether private content was read while a function ran."""

    def __init__(self) -> None:
        self.happened = False

    def run(self, func: Callable[..., T], *args: Any) -> T:
        """Call ``func(*args)`` with this tracker active (in the calling thread)."""
        token = _current.set(self)
        try:
            return func(*args)
        finally:
            _current.reset(token)


def note_read() -> None:
    """Mark that private content is about to be read (no-op outside a tracked load)."""
    tracker = _current.get()
    if tracker is not None:
        tracker.happened = True
