"""The plan form: an OpenDP polars plan built into a measurement over the dataset.

* Domain (the server's, from metadata): one series per metadata column (int -> i64, float -> f64
  without NaN, string, boolean; ``nullable`` -> nulls allowed; datetime columns are not offered)
  and margins of at most ``rows`` rows. No margin declares keys or lengths invariant.
* Public keys only when declared: a group-by whose keys are all plain columns marked
  ``public_keys: true`` is completed by the server with the declared key set (OpenDP's explicit
  key-set join, as ``LazyFrameQuery.with_keys`` builds it): the answer holds exactly the declared
  categories (and null for nullable columns), absent ones included, in declared order. Any other
  group-by goes through OpenDP's thresholding and needs ``delta`` (refused when the metadata sets
  ``censor_dims: false``).
* Release check: a released key of a column with ``categories`` is always one of them (or null),
  and a public group-by releases exactly its key set; anything else is withheld.
* Metric: symmetric distance; the privacy map is evaluated at ``d_in = max_ids``.
* Bounded work: slices, literal series and public key sets are at most the engine's size limit.
* Calibration: the noise scale is solved directly (the loss of a plan scales as 1/s for pure DP
  and 1/s^2 for zCDP) and checked against OpenDP's own map, instead of a search over ~1,200
  measurement builds; the threshold is a binary search over at most 33 builds. Built
  measurements are cached per (plan, metadata, loss), so repeating a query costs one lookup.
* Data: OpenDP receives a LazyFrame that scans the dataset's Arrow table (:mod:`.frame`), built
  once per dataset version (``DataHandle.memo``); each query only invokes the measurement on it.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from lomas_core.api import (
    DatasetInfo,
    InvalidQuery,
    Metadata,
    QueryFailed,
)
from lomas_engine_opendp.errors import opendp_reason
from lomas_engine_opendp.plan_check import check_plan, parse_plan_json
from lomas_engine_opendp.query import OpenDPQuery
from lomas_engine_opendp.wire import POLARS_TYPES, polars_schema

__all__ = ["BuiltPlan", "PlanBuilder"]

_U32_MAX = 2**32 - 1


@dataclass(frozen=True)
class GroupSpec:
    """A group-by of the plan on plain columns: its key columns and, when they are all declared
    public, the full key set the answer must hold (in declared order)."""

    columns: tuple[str, ...]
    allowed: dict[str, frozenset[Any] | None]
    keys: tuple[tuple[Any, ...], ...] | None = None


@dataclass(frozen=True)
class BuiltPlan:
    """A calibrated plan measurement and the checks its release must pass."""

    measurement: Any
    groups: tuple[GroupSpec, ...] = ()
    #: The top plan step, when it is post-processing the server must not undo (Sort, Slice).
    top_step: str | None = None

    def released(self, frame: Any) -> Any:
        """``frame`` (the collected release) after the shape check; public key sets in declared
        order. Raises QueryFailed (the charge is kept) when a key outside the declared
        categories, or a public key set that is not exactly the declared one, would be released.
        """
        import polars as pl

        for spec in self.groups:
            for name in spec.columns:
                allowed = spec.allowed.get(name)
                if allowed is None or name not in frame.columns:
                    continue
                if any(v not in allowed for v in frame.get_column(name).unique().to_list()):
                    raise QueryFailed("the answer was withheld: it held a group key outside the "
                                      "column's declared categories")
        top = self.groups[-1] if self.groups else None
        if top is None or top.keys is None or not set(top.columns) <= set(frame.columns):
            return frame
        got = list(frame.select(list(top.columns)).iter_rows())
        exact = self.top_step != "Slice"  # a slice of the answer is the researcher's own choice
        if len(got) != len(set(got)) or not set(got) <= set(top.keys) \
                or (exact and len(got) != len(top.keys)):
            raise QueryFailed("the answer was withheld: its groups were not exactly the declared "
                              "public keys")
        if self.top_step is not None:
            return frame
        order = pl.DataFrame([list(k) for k in top.keys], schema=list(top.columns), orient="row",
                             schema_overrides={c: frame.schema[c] for c in top.columns})
        return order.join(frame, on=list(top.columns), how="left", nulls_equal=True,
                          maintain_order="left")


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
    def measurement(self, query: OpenDPQuery, dataset: DatasetInfo, *, limit: int) -> BuiltPlan:
        """The calibrated measurement of ``query.plan`` for ``dataset`` (public inputs only)."""
        assert query.plan is not None
        meta = dataset.metadata
        text = json.dumps(parse_plan_json(query.plan), sort_keys=True, separators=(",", ":"))
        key = hashlib.sha256("|".join([
            text, meta.model_dump_json(), query.output_measure, repr(query.epsilon),
            repr(query.rho), repr(query.delta), repr(query.global_scale), repr(query.threshold),
            str(limit),
        ]).encode()).hexdigest()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        checked = check_plan(json.loads(text), _source_node(meta), self.plugin_lib, limit=limit)
        tree, groups = _with_public_keys(checked.tree, meta, limit)
        canonical = json.dumps(tree, sort_keys=True, separators=(",", ":"))
        m = self._build(canonical, checked.group_keys, query, meta)
        top = next(iter(tree))
        built = BuiltPlan(m, tuple(groups), top if top in ("Sort", "Slice") else None)
        with self._lock:
            self._cache[key] = built
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return built

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
                    raise InvalidQuery("this plan groups by columns whose keys are not public "
                                       "(only columns marked public_keys in the metadata are): "
                                       "give 'delta' > 0 so OpenDP can threshold the groups"
                                       ) from None
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
    """The server's input domain: the metadata's columns, at most ``rows`` rows overall and per
    group; no invariants (public keys come from an explicit key set, never from the data)."""
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
        if not all(k in meta.columns for k in keys):
            continue
        if not meta.censor_dims and not all(meta.public_keys(k) is not None for k in keys):
            raise InvalidQuery(f"grouping by {', '.join(keys)} is refused: its keys are not public "
                               "(public_keys) and this dataset does not allow thresholded groups "
                               "(censor_dims: false)")
        cols = [meta.columns[k] for k in keys]
        groups = None
        if all(c.categories for c in cols):
            # frame.py turns values outside the categories into null (or drops the row).
            groups = min(math.prod(len(c.categories or []) + int(c.nullable) for c in cols),
                         _U32_MAX)
        domain = dp.with_margin(domain, dp.polars.Margin(by=[pl.col(k) for k in keys],
                                                         max_length=rows, max_groups=groups))
    return domain


def _key_values(meta: Metadata, name: str, public: bool) -> frozenset[Any] | None:
    col = meta.columns[name]
    if not col.categories:
        return None
    values = list(meta.public_keys(name) or []) if public else list(col.categories)
    return frozenset(values + ([None] if col.nullable else []))


def _with_public_keys(tree: dict[str, Any], meta: Metadata,
                      limit: int) -> tuple[dict[str, Any], list[GroupSpec]]:
    """The plan with every all-public group-by joined onto the declared key set (OpenDP's explicit
    key-set form), and the group-by specs the release is checked against."""
    groups: list[GroupSpec] = []

    def walk(node: dict[str, Any]) -> dict[str, Any]:
        ((kind, body),) = node.items()
        if kind == "DataFrameScan":
            return node
        body = {**body, "input": walk(body["input"])}
        node = {kind: body}
        if kind != "GroupBy":
            return node
        names = [k.get("Column") if isinstance(k, dict) else None for k in body.get("keys") or []]
        if not names or not all(isinstance(n, str) and n in meta.columns for n in names):
            return node
        columns = tuple(str(n) for n in names)
        public = all(meta.public_keys(c) is not None for c in columns)
        allowed = {c: _key_values(meta, c, public) for c in columns}
        if not public:
            groups.append(GroupSpec(columns, allowed))
            return node
        per_column = [list(meta.public_keys(c) or []) + ([None] if meta.columns[c].nullable
                                                         else []) for c in columns]
        if math.prod(len(v) for v in per_column) > limit:
            raise InvalidQuery(f"the public key set of {', '.join(columns)} has more than {limit} "
                               "combinations, more than this server allows for this dataset")
        keys = tuple(itertools.product(*per_column))
        groups.append(GroupSpec(columns, allowed, keys))
        return _key_join(meta, columns, keys, node)

    return walk(tree), groups


def _key_join(meta: Metadata, columns: tuple[str, ...], keys: tuple[tuple[Any, ...], ...],
              group_by: dict[str, Any]) -> dict[str, Any]:
    """``keys.join(<group_by>, how="left", on=columns, nulls_equal=True)`` as plan JSON."""
    import polars as pl

    schema = polars_schema(meta.model_dump())
    frame = pl.LazyFrame([list(k) for k in keys], schema={c: schema[c] for c in columns},
                         orient="row")
    right = pl.LazyFrame(schema={c: schema[c] for c in columns})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = frame.join(right, how="left", on=list(columns), nulls_equal=True).serialize(
            format="json")
    join = json.loads(text)
    join["Join"]["input_right"] = group_by
    return dict(join)
