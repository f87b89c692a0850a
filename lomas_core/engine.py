"""The DP-engine interface.

An engine plugin returns an :class:`Engine` from ``lomas_make_engine``. The core drives every engine
through the same lifecycle: ``parse`` the payload -> ``cost`` from public metadata -> (access check,
atomic charge, data load: done by the core) -> ``run`` -> archive -> respond.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError

from lomas_core.budget import Budget
from lomas_core.data import DataHandle
from lomas_core.errors import InvalidQuery
from lomas_core.metadata import Metadata

__all__ = ["DatasetInfo", "Engine", "validation_message"]


class DatasetInfo(BaseModel):
    """What an engine may know about a dataset before touching data: its name and public metadata."""

    name: str
    metadata: Metadata
    #: The SQL dialect of the push-down source the dataset lives on (``duckdb``,
    #: ``postgresql``), or None when it is read into memory. Public: it is the server's config.
    dialect: str | None = None


def validation_message(exc: ValidationError) -> str:
    """A short researcher-facing summary of a pydantic error (no input values echoed)."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False)[:5]:
        where = ".".join(str(p) for p in err.get("loc", ())) or "payload"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


class Engine(ABC):
    """A differential-privacy engine.

    Subclasses set ``name`` and ``Query`` (the pydantic model of the query payload) and implement
    :meth:`cost` and :meth:`run`. Both are blocking; the server calls them from worker threads, so
    they must keep no per-request state on ``self``.
    """

    #: Short name used in the config and in requests (``opendp``, ``smartnoise_sql``).
    name: ClassVar[str] = ""
    #: Pydantic model of the query payload.
    Query: ClassVar[type[BaseModel]]
    #: Push-down SQL dialects this engine can render for (``duckdb``, ...): datasets on a
    #: :class:`~lomas_core.source.SqlSource` of another dialect are refused before any charge,
    #: and :meth:`run` then receives a :class:`~lomas_core.source.SourceHandle`.
    pushdown: ClassVar[frozenset[str]] = frozenset()

    def parse(self, payload: Mapping[str, Any]) -> BaseModel:
        """Validate a raw payload into ``Query``.

        Raises:
            InvalidQuery: with a message naming the offending fields.
        """
        try:
            return self.Query.model_validate(payload)
        except ValidationError as exc:
            raise InvalidQuery(f"invalid {self.name} query: {validation_message(exc)}") from None

    @abstractmethod
    def cost(self, query: Any, dataset: DatasetInfo) -> Budget:
        """The exact privacy cost of ``query`` on ``dataset``, from public metadata only.

        This is also where a query is validated against the metadata (unknown columns, missing
        bounds, unsupported constructs): raise :class:`InvalidQuery`. Must never read private data.
        """

    @abstractmethod
    def run(self, query: Any, data: DataHandle, dataset: DatasetInfo) -> Any:
        """Run ``query`` on ``data`` (private or dummy) and return a JSON-safe result.

        Use :mod:`lomas_core.results` to build tables and values. Called only after the cost was
        charged (or for dummy data). Never re-run a mechanism to get a nicer answer. Exceptions are
        turned into a generic :class:`~lomas_core.errors.QueryFailed` by the core.
        """

    def warmup(self) -> None:
        """Pay one-time start-up costs (imports, calibration tables). Called once at server start."""

    def close(self) -> None:
        """Release resources at shutdown."""
