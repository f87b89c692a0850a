"""The DP-engine interface.

An engine is a class named by an entry point in the group ``lomas.engines``; the entry point's name
is the engine's only name (the core sets :attr:`Engine.name`). The core validates the config's
``engines.<name>`` section against :attr:`Engine.Options`, builds the engine with
``cls.create(options, context)`` (default: ``cls(options, context)``) and drives every engine
through the same lifecycle: ``parse`` the payload -> ``cost`` from public metadata -> (access check,
atomic charge, data load: done by the core) -> ``run`` -> archive -> respond.

Rules (checked by :class:`lomas_core.testing.engine_contract.EngineContract`):

- ``cost`` reads public metadata only and is exact (a :class:`~lomas_core.budget.Budget`); the same
  query always costs the same.
- ``run`` is called only after the cost was charged (or on dummy data); it never re-runs a mechanism
  to get a nicer answer, and keeps no per-request state on ``self``.
- Every input to the privacy proof (bounds, domains, contribution limits) comes from the metadata,
  never from the payload; a payload claiming otherwise is refused with :class:`InvalidQuery`.
- Results are built with :mod:`lomas_core.results`; errors are lomas errors, never raw tracebacks.
- Import heavy libraries in ``__init__``/``warmup`` or lazily, not at module level.

Hooks an engine may use: none directly; observers (:mod:`lomas_core.observer`) see its queries
through ``lomas_query_stage``, ``lomas_query_refused`` and ``lomas_query_completed``.
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
from lomas_core.plugin_base import NoOptions, PluginBase
from lomas_core.validation import validation_message

__all__ = ["DatasetInfo", "Engine", "NoOptions"]


class DatasetInfo(BaseModel):
    """What an engine may know about a dataset before touching data: its name and public metadata."""

    name: str
    metadata: Metadata
    #: The SQL dialect of the push-down source the dataset lives on (``duckdb``,
    #: ``postgresql``), or None when it is read into memory. Public: it is the server's config.
    dialect: str | None = None


class Engine(PluginBase, ABC):
    """A differential-privacy engine.

    Subclasses set ``Query`` (the pydantic model of the query payload) and, when they take options,
    ``Options``; they implement :meth:`cost` and :meth:`run`. Both are blocking; the server calls
    them from worker threads, so they must keep no per-request state on ``self``.
    """

    #: Pydantic model of the query payload.
    Query: ClassVar[type[BaseModel]]
    #: Heavy modules the execution pool's forkserver imports once, so that every worker shares
    #: their pages instead of importing them itself (names only; the engine's module stays light).
    preload: ClassVar[tuple[str, ...]] = ()
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

