"""The ``opendp`` engine: OpenDP measurement pipelines and OpenDP polars plans."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from lomas_core.api import (
    Budget,
    DataHandle,
    DatasetInfo,
    Engine,
    InvalidQuery,
    PluginContext,
    QueryFailed,
    results,
)
from lomas_engine_opendp.accounting import charge_of
from lomas_engine_opendp.limits import size_limit
from lomas_engine_opendp.query import OpenDPQuery

__all__ = ["OpenDPEngine", "OpenDPOptions"]

log = logging.getLogger("lomas.engines.opendp")


class OpenDPOptions(BaseModel):
    """``engines.opendp`` options in the server config."""

    model_config = ConfigDict(extra="forbid")

    #: Enable OpenDP's ``honest-but-curious`` feature (constructors trusting user functions).
    honest_but_curious: bool = False
    #: Largest accepted ``pipeline``/``plan`` text, in characters.
    max_query_chars: int = Field(default=500_000, ge=1024)
    #: Calibrated plan measurements kept in memory; as many rebuilt pipeline measurements.
    plan_cache_size: int = Field(default=256, ge=0)
    #: Any size or length a payload asks for (resize, sized sums, trees, lists, slices, literal
    #: series, public key sets) is at most the dataset's ``rows`` times this factor.
    max_size_factor: int = Field(default=4, ge=1, le=1000)
    #: The cap on sizes and lengths when the metadata does not give ``rows``.
    max_size_without_rows: int = Field(default=1_000_000, ge=1)


class OpenDPEngine(Engine):
    """Runs OpenDP pipelines (``{"pipeline": ...}``) and polars plans (``{"plan": ...}``)."""

    Options: ClassVar[type[BaseModel]] = OpenDPOptions
    Query: ClassVar[type[BaseModel]] = OpenDPQuery
    preload = ("polars", "opendp.prelude", "pandas")

    def __init__(self, options: OpenDPOptions | None = None,
                 context: PluginContext | None = None) -> None:
        # The core validated the options against ``Options`` (None: the defaults, for tests).
        self.options = options or OpenDPOptions()
        logger = context.logger if context is not None else log
        import opendp.prelude as dp

        dp.enable_features("contrib")
        if self.options.honest_but_curious:
            dp.enable_features("honest-but-curious")
            logger.warning("engines.opendp.honest_but_curious is on: OpenDP constructors that "
                           "trust user-supplied functions are enabled")
        from lomas_engine_opendp.plans import PlanBuilder

        self._plans = PlanBuilder(cache_size=self.options.plan_cache_size)
        self._pipelines: OrderedDict[tuple[str, str | None, str, int], tuple[Any, Any]] = \
            OrderedDict()
        self._pipelines_lock = threading.Lock()

    def parse(self, payload: Mapping[str, Any]) -> BaseModel:
        query = super().parse(payload)
        assert isinstance(query, OpenDPQuery)
        text = query.pipeline if query.pipeline is not None else query.plan
        if text is not None and len(text) > self.options.max_query_chars:
            raise InvalidQuery(f"the {'pipeline' if query.pipeline else 'plan'} is larger than "
                               f"{self.options.max_query_chars} characters")
        return query

    # -- building (public inputs only) -------------------------------------------------------------
    def _limit(self, dataset: DatasetInfo) -> int:
        return size_limit(dataset.metadata, self.options.max_size_factor,
                          self.options.max_size_without_rows)

    def _measurement(self, query: OpenDPQuery, dataset: DatasetInfo) -> tuple[Any, Any]:
        if query.pipeline is not None:
            return self._pipeline(query.pipeline, query.column, dataset)
        built = self._plans.measurement(query, dataset, limit=self._limit(dataset))
        return built.measurement, built

    def _pipeline(self, text: str, column: str | None, dataset: DatasetInfo) -> tuple[Any, Any]:
        """The checked, deserialized pipeline and its feed, kept per (text, column, metadata,
        size limit): a pure function of those public inputs (no search: the payload carries its
        scales). The OpenDP measurement is immutable and is invoked afresh (fresh noise) on every
        run. A refusal is not kept."""
        from lomas_engine_opendp.pipeline import build_pipeline

        limit = self._limit(dataset)
        key = (text, column, dataset.metadata.model_dump_json(), limit)
        with self._pipelines_lock:
            hit = self._pipelines.get(key)
            if hit is not None:
                self._pipelines.move_to_end(key)
                return hit
        built = build_pipeline(text, column, dataset,
                               honest_but_curious=self.options.honest_but_curious, limit=limit)
        if self.options.plan_cache_size:
            with self._pipelines_lock:
                self._pipelines[key] = built
                while len(self._pipelines) > self.options.plan_cache_size:
                    self._pipelines.popitem(last=False)
        return built

    def cost(self, query: Any, dataset: DatasetInfo) -> Budget:
        measurement, _ = self._measurement(query, dataset)
        # d_in is the server's: max_ids rows under the symmetric distance of its own domain.
        return charge_of(measurement, dataset.metadata.max_ids, query.fixed_delta)

    def run(self, query: Any, data: DataHandle, dataset: DatasetInfo) -> Any:
        measurement, built = self._measurement(query, dataset)
        # The charge was computed from this same deterministic build; checking it again keeps a
        # measurement the cost step would refuse from ever running.
        charge_of(measurement, dataset.metadata.max_ids, query.fixed_delta)
        from opendp.core import measurement_invoke

        if query.pipeline is not None:
            from lomas_engine_opendp.pipeline import feed_pipeline

            release = measurement_invoke(measurement, feed_pipeline(data, built,
                                                                    measurement.input_domain))
            return _pipeline_result(release)
        from lomas_engine_opendp.frame import prepared_frame

        frame = prepared_frame(data, dataset.metadata)
        release = measurement_invoke(measurement, frame)
        return results.table_from_polars(built.released(release.collect()))

    def warmup(self) -> None:
        """Load OpenDP's library and polars plugin, and build one small plan end to end."""
        import polars as pl

        from lomas_core.api import Metadata
        from lomas_engine_opendp.wire import empty_lazyframe, serialize_plan

        meta = Metadata.model_validate({"rows": 10, "columns": {
            "g": {"type": "string", "categories": ["a"], "public_keys": True},
            "x": {"type": "float"}}})
        import opendp.prelude  # noqa: F401 - registers the .dp namespace on polars expressions

        noise: Any = pl.len()
        plan = empty_lazyframe(meta.model_dump()).group_by("g").agg(noise.dp.noise())
        query = OpenDPQuery(plan=serialize_plan(plan), epsilon=1.0)
        info = DatasetInfo(name="warmup", metadata=meta)
        self._plans.measurement(query, info, limit=self._limit(info))


def _pipeline_result(release: Any) -> Any:
    kind = type(release).__name__
    if kind in ("Queryable", "OnceFrame") or callable(release):
        raise QueryFailed()
    if isinstance(release, dict):
        return results.value({str(k): v for k, v in release.items()})
    return results.value(release)
