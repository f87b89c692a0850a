"""The noise-scale cache returns exactly what SmartNoise-SQL's own search computes.

Over a grid of public inputs (epsilon share, delta, sensitivity, max_ids, mechanism) the scale,
the threshold and the privacy cost of a mechanism built through the cache (cold and warm) are
equal, bit for bit, to those of the library's own class built without it.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest
from lomas_engine_smartnoise_sql.calibration import ScaleCache, scale_key
from lomas_engine_smartnoise_sql.engine import SmartnoiseSQLEngine
from lomas_engine_smartnoise_sql.query import SmartnoiseSQLQuery

from lomas_core.engine import DatasetInfo
from lomas_core.metadata import Metadata
from lomas_core.testing.plugins import build

EPSILONS = [0.01, 0.1, 1 / 3, 1.0, 2.5]
SENSITIVITIES: list[Any] = [1, 1.0, 100.0, 2500, 0.5]
MAX_IDS = [1, 3]
DELTAS = [1e-6, 1e-3]
#: The Gaussian search is slow (up to seconds per point): a smaller grid.
GAUSSIAN_GRID = [(1.0, 1e-6, 1, 1), (0.1, 1e-3, 100.0, 1), (0.5, 1e-6, 1.0, 3), (1 / 3, 1e-3, 10, 2)]


def _mechanism(cls: type, epsilon: float, delta: float, sensitivity: Any, max_ids: int) -> Any:
    # How SmartNoise-SQL's Query.load_symbols builds every mechanism.
    return cls(epsilon, delta=delta, sensitivity=sensitivity, max_contrib=max_ids)


def _threshold(mech: Any, delta: float) -> float:
    mech.delta = delta  # as load_symbols sets it on key counts
    return float(mech.threshold)


@pytest.mark.parametrize("kind", ["laplace", "gaussian"])
def test_cached_scale_is_the_library_scale_over_a_grid(kind: str) -> None:
    from snsql.sql._mechanisms.gaussian import Gaussian
    from snsql.sql._mechanisms.laplace import Laplace

    library = {"laplace": Laplace, "gaussian": Gaussian}[kind]
    cache = ScaleCache(size=10_000)
    cached = cache.classes()[library]
    grid = (list(itertools.product(EPSILONS, DELTAS, SENSITIVITIES, MAX_IDS)) if kind == "laplace"
            else GAUSSIAN_GRID)
    for epsilon, delta, sensitivity, max_ids in grid:
        try:
            plain = _mechanism(library, epsilon, delta, sensitivity, max_ids)
        except ValueError:
            with pytest.raises(ValueError):
                _mechanism(cached, epsilon, delta, sensitivity, max_ids)
            continue
        cold = _mechanism(cached, epsilon, delta, sensitivity, max_ids)
        warm = _mechanism(cached, epsilon, delta, sensitivity, max_ids)
        assert isinstance(warm, library)
        for mech in (cold, warm):
            assert mech.scale == plain.scale, (epsilon, delta, sensitivity, max_ids)
            assert repr(mech.scale) == repr(plain.scale)
            assert (mech.epsilon, mech.delta, mech.lower, mech.upper, mech.max_contrib) == \
                (plain.epsilon, plain.delta, plain.lower, plain.upper, plain.max_contrib)
        for mech in (cold, warm):
            assert _threshold(mech, delta) == _threshold(plain, delta)
    assert cache.hits >= len(grid) // 2 and len(cache) <= len(grid)


def test_keys_tell_apart_what_the_search_can_tell_apart() -> None:
    from snsql.sql._mechanisms.laplace import Laplace

    cached = ScaleCache().classes()[Laplace]
    one, one_f = _mechanism(cached, 1.0, 0.0, 1, 1), _mechanism(cached, 1.0, 0.0, 1.0, 1)
    assert scale_key("laplace", one) != scale_key("laplace", one_f)
    # delta does not enter Laplace's search; it does enter the Gaussian's.
    assert scale_key("laplace", _mechanism(cached, 1.0, 1e-6, 1, 1)) == \
        scale_key("laplace", _mechanism(cached, 1.0, 1e-3, 1, 1))
    gaussian = ScaleCache().classes()
    from snsql.sql._mechanisms.gaussian import Gaussian

    g1 = _mechanism(gaussian[Gaussian], 1.0, 1e-6, 1, 1)
    g2 = _mechanism(gaussian[Gaussian], 1.0, 1e-3, 1, 1)
    assert scale_key("gaussian", g1) != scale_key("gaussian", g2) and g1.scale != g2.scale


def test_a_full_cache_evicts_the_oldest_and_size_zero_stores_nothing() -> None:
    from snsql.sql._mechanisms.laplace import Laplace

    small = ScaleCache(size=2)
    for epsilon in (0.5, 1.0, 2.0):
        _mechanism(small.classes()[Laplace], epsilon, 0.0, 1, 1)
    assert len(small) == 2
    off = ScaleCache(size=0)
    _mechanism(off.classes()[Laplace], 1.0, 0.0, 1, 1)
    assert len(off) == 0


def test_concurrent_builds_agree_with_the_library() -> None:
    from snsql.sql._mechanisms.laplace import Laplace

    cache = ScaleCache()
    cls = cache.classes()[Laplace]
    expected = {eps: Laplace(eps, sensitivity=1, max_contrib=1).scale for eps in (0.3, 0.7)}
    seen: list[tuple[float, float]] = []

    def worker(eps: float) -> None:
        for _ in range(3):
            seen.append((eps, cls(eps, sensitivity=1, max_contrib=1).scale))

    threads = [threading.Thread(target=worker, args=(eps,)) for eps in (0.3, 0.7, 0.3, 0.7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 12 and all(scale == expected[eps] for eps, scale in seen)


META = Metadata.model_validate({"max_ids": 2, "rows": 100, "censor_dims": True, "columns": {
    "g": {"type": "string"}, "x": {"type": "float", "lower": 0.0, "upper": 10.0},
    "k": {"type": "int", "lower": 0, "upper": 5000}}})


@pytest.mark.parametrize(("sql", "mechanisms"), [
    ("SELECT COUNT(*) AS n FROM df", None),
    ("SELECT g, COUNT(*) AS n, AVG(x) AS m, SUM(k) AS s FROM df GROUP BY g", None),
    ("SELECT g, COUNT(*) AS n, VAR(x) AS v FROM df GROUP BY g", None),
    ("SELECT g, COUNT(*) AS n FROM df GROUP BY g", {"count": "gaussian"}),
])
def test_the_engine_charges_and_calibrates_as_without_the_cache(sql: str, mechanisms: Any) -> None:
    from lomas_engine_smartnoise_sql.accounting import privacy_of
    from lomas_engine_smartnoise_sql.backend import make_reader
    from lomas_engine_smartnoise_sql.metadata import to_snsql_metadata
    from lomas_engine_smartnoise_sql.sql_check import prepare_sql

    query = SmartnoiseSQLQuery(sql=sql, epsilon=0.7, delta=1e-4, mechanisms=mechanisms)
    dataset = DatasetInfo(name="t", metadata=META)
    cached, uncached = build(SmartnoiseSQLEngine), build(SmartnoiseSQLEngine, {"scale_cache_size": 0})
    for _ in range(2):  # cold, then warm
        assert cached.cost(query, dataset) == uncached.cost(query, dataset)
        cached._costs.clear()
    scales = ScaleCache()

    def mechanisms_of(cache: ScaleCache | None) -> list[Any]:
        reader = make_reader(None, to_snsql_metadata(META, censor_dims=True),
                             privacy_of(query, cache))
        subquery, _ = reader._rewrite(prepare_sql(sql, "t").sql)
        return [m for m in reader._get_mechanisms(subquery) if m is not None]

    plain = mechanisms_of(None)
    for _ in range(2):
        got = mechanisms_of(scales)
        assert [type(m).__mro__[1] for m in got] == [type(m) for m in plain]
        assert [(m.scale, m.epsilon, m.delta, m.sensitivity) for m in got] == \
            [(m.scale, m.epsilon, m.delta, m.sensitivity) for m in plain]
        assert [m.threshold for m in got if m.delta] == [m.threshold for m in plain if m.delta]
    assert scales.hits > 0
