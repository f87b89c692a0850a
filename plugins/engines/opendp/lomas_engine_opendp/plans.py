"""The plan form: an OpenDP polars plan built into a measurement over the dataset.

* Domain: one series per metadata column (int -> i64, float -> f64 without NaN, string, boolean;
  ``nullable`` -> option domain; datetime columns are not offered), a margin of at most ``rows``
  rows, and for every group-by key set whose columns all have ``categories``: ``max_groups`` =
  product of their sizes, with the keys declared public (``invariant="keys"``) unless the
  metadata sets ``censor_dims``. Other groupings are released with OpenDP's thresholding, which
  needs a ``delta``.
* Metric: symmetric distance; the privacy map is evaluated at ``d_in = max_ids``.
* Calibration: the noise scale is solved directly (the loss of a plan scales as 1/s for pure DP
  and 1/s^2 for zCDP) and checked against OpenDP's own map, instead of a search over ~1,200
  measurement builds; the threshold is a binary search over at most 33 builds. Built
  measurements are cached per (plan, metadata, loss), so repeating a query costs one lookup.
* Data: the dataset is converted to a polars LazyFrame and handed across OpenDP's FFI once per
  dataset version (``DataHandle.memo``); each query only invokes the measurement on that object.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import threading
import warnings
from collections import OrderedDict
from typing import Any

from lomas_core.data import DataHandle
from lomas_core.engine import DatasetInfo
from lomas_core.errors import InvalidQuery
from lomas_core.metadata import Metadata
from lomas_engine_opendp.errors import opendp_reason
from lomas_engine_opendp.plan_check import check_plan, parse_plan_json
from lomas_engine_opendp.query import OpenDPQuery
from lomas_engine_opendp.wire import POLARS_TYPES, polars_schema

__all__ = ["PlanBuilder", "prepared_frame"]

_U32_MAX = 2**32 - 1


class PlanBuilder:
    """Builds (and caches) calibrated measurements for plans. Thread-safe."""

    def __init__(self, cache_size: int = 256) -> None:
        import opendp.prelude as dp

        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._cache_size = cache_size
        probe = dp.polars  # noqa: F841 - registers the .dp namespace on polars expressions
        self.plugin_lib = str(dp.polars._get_opendp_polars_lib_path())

    # -- public ------------------------------------------------------------------------------------
    def measurement(self, query: OpenDPQuery, dataset: DatasetInfo) -> Any:
        """The calibrated measurement of ``query.plan`` for ``dataset`` (public inputs only)."""
        assert query.plan is not None
        meta = dataset.metadata
        checked = check_plan(parse_plan_json(query.plan), _source_node(meta), self.plugin_lib)
        canonical = json.dumps(checked.tree, sort_keys=True, separators=(",", ":"))
        key = hashlib.sha256("|".join([
            canonical, meta.model_dump_json(), query.output_measure, repr(query.epsilon),
            repr(query.rho), repr(query.delta), repr(query.global_scale), repr(query.threshold),
        ]).encode()).hexdigest()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        m = self._build(canonical, checked.group_keys, query, meta)
        with self._lock:
            self._cache[key] = m
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return m

    # -- building ----------------------------------------------------------------------------------
    def _build(self, canonical: str, group_keys: list[tuple[str, ...]], query: OpenDPQuery,
               meta: Metadata) -> Any:
        import opendp.prelude as dp
        import polars as pl

        if query.output_measure == "smoothed_max_divergence":
            raise InvalidQuery("OpenDP's polars plans support max_divergence and "
                               "zero_concentrated_divergence outputs, not smoothed_max_divergence")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                lf = pl.LazyFrame.deserialize(io.StringIO(canonical), format="json")
            except Exception as exc:  # noqa: BLE001 - polars refuses the (checked) plan
                raise InvalidQuery(f"the plan could not be read: {opendp_reason(exc)}") from None
        domain = _domain(meta, group_keys)
        measure = (dp.max_divergence() if query.output_measure == "max_divergence"
                   else dp.zero_concentrated_divergence())
        if query.delta is not None:
            measure = dp.approximate(measure)
        d_in = meta.max_ids

        def build(scale: float, threshold: int | None) -> Any:
            try:
                m = dp.m.make_private_lazyframe(domain, dp.symmetric_distance(), measure, lf,
                                                global_scale=scale, threshold=threshold)
                m.map(d_in)
                return m
            except Exception as exc:  # noqa: BLE001 - library refusal on public inputs
                reason = opendp_reason(exc)
                if "Approximate-DP is necessary" in reason:
                    raise InvalidQuery("this plan groups by columns whose keys are not public (no "
                                       "categories in the metadata, or censor_dims): give "
                                       "'delta' > 0 so OpenDP can threshold the groups") from None
                raise InvalidQuery(f"OpenDP refused the plan: {reason}") from None

        if query.global_scale is not None:
            return build(query.global_scale, query.threshold)
        target = query.epsilon if query.output_measure == "max_divergence" else query.rho
        assert target is not None
        probe_threshold = query.threshold if query.threshold is not None else _U32_MAX
        base = _loss(build(1.0, probe_threshold).map(d_in))
        if base[0] <= 0:
            scale = 1.0
        elif query.output_measure == "max_divergence":
            scale = base[0] / target
        else:
            scale = math.sqrt(base[0] / target)
        m = build(scale, probe_threshold)
        nudge = 1e-12
        while _loss(m.map(d_in))[0] > target:
            nudge *= 4
            if nudge > 1:
                raise InvalidQuery("could not calibrate the noise scale for this plan")
            m = build(scale * (1 + nudge), probe_threshold)
            scale = scale * (1 + nudge)
        if "Approximate" not in str(m.output_measure.type) or query.threshold is not None:
            return m
        if not query.delta:
            if _loss(m.map(d_in))[1] == 0:
                return m
            raise InvalidQuery("give 'delta' > 0 to threshold the groups of this plan")
        return self._threshold(build, scale, d_in, query.delta)

    @staticmethod
    def _threshold(build: Any, scale: float, d_in: int, delta: float) -> Any:
        """The smallest threshold whose delta fits ``delta`` (delta falls as it grows)."""
        lo, hi = 0, _U32_MAX
        if _loss(build(scale, hi).map(d_in))[1] > delta:
            raise InvalidQuery("'delta' is too small for thresholding these groups")
        while lo < hi:
            mid = (lo + hi) // 2
            if _loss(build(scale, mid).map(d_in))[1] <= delta:
                hi = mid
            else:
                lo = mid + 1
        return build(scale, hi)


def _loss(value: Any) -> tuple[float, float]:
    if isinstance(value, tuple):
        return float(value[0]), float(value[1])
    return float(value), 0.0


def _source_node(meta: Metadata) -> dict[str, Any]:
    """The server's own placeholder source: an empty frame with the dataset's schema."""
    return _source_cache(meta.model_dump_json())


_sources: dict[str, dict[str, Any]] = {}


def _source_cache(meta_json: str) -> dict[str, Any]:
    node = _sources.get(meta_json)
    if node is None:
        import polars as pl

        meta = Metadata.model_validate_json(meta_json)
        schema = polars_schema(meta.model_dump())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            text = pl.LazyFrame(schema=schema).serialize(format="json")
        node = json.loads(text)["DataFrameScan"]
        if len(_sources) > 1024:
            _sources.clear()
        _sources[meta_json] = node
    return node


def _domain(meta: Metadata, group_keys: list[tuple[str, ...]]) -> Any:
    import opendp.prelude as dp
    import polars as pl

    series = []
    for name, col in meta.columns.items():
        if col.type not in POLARS_TYPES:
            continue
        atom = {"int": lambda: dp.atom_domain(T=dp.i64),
                "float": lambda: dp.atom_domain(T=float, nan=False),
                "string": lambda: dp.atom_domain(T=str),
                "boolean": lambda: dp.atom_domain(T=bool)}[col.type]()
        series.append(dp.series_domain(name, dp.option_domain(atom) if col.nullable else atom))
    domain = dp.lazyframe_domain(series)
    rows = meta.rows
    domain = dp.with_margin(domain, dp.polars.Margin(by=[], max_length=rows))
    for keys in dict.fromkeys(group_keys):
        cols = [meta.columns.get(k) for k in keys]
        if any(c is None or not c.categories for c in cols):
            continue
        groups = math.prod(len(c.categories or []) for c in cols if c is not None)
        domain = dp.with_margin(domain, dp.polars.Margin(
            by=[pl.col(k) for k in keys], max_length=rows, max_groups=min(groups, _U32_MAX),
            invariant=None if meta.censor_dims else "keys"))
    return domain


def prepared_frame(data: DataHandle, meta: Metadata) -> Any:
    """The dataset as an OpenDP-owned LazyFrame object, built once per dataset version.

    Columns get the domain's dtypes; NaN becomes null; rows with a null in a non-nullable column
    are dropped (a row-wise, 1-stable step that keeps the data inside the declared domain).
    """
    key = "opendp:lazyframe:" + hashlib.sha256(meta.model_dump_json().encode()).hexdigest()[:16]
    return data.memo(key, lambda: _prepare(data, meta))


def _prepare(data: DataHandle, meta: Metadata) -> Any:
    import polars as pl
    from opendp._convert import py_to_c
    from opendp._lib import AnyObjectPtr

    schema = polars_schema(meta.model_dump())
    frame = pl.from_arrow(data.table.select(list(schema)), rechunk=True)
    assert isinstance(frame, pl.DataFrame)
    exprs = []
    for name, dtype in schema.items():
        expr = pl.col(name).cast(dtype, strict=False)
        if dtype == pl.Float64:
            expr = expr.fill_nan(None)
        exprs.append(expr)
    frame = frame.select(exprs)
    required = [n for n in schema if not meta.columns[n].nullable]
    if required:
        frame = frame.drop_nulls(subset=required)
    return py_to_c(frame.lazy(), c_type=AnyObjectPtr, type_name="LazyFrame")
