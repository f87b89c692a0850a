"""The statistical test on its own: Clopper-Pearson bounds and the epsilon lower bound."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lomas_core.testing.privacy_audit.stats import clopper_pearson, epsilon_lower_bound, features

# (k, n, alpha) -> (lower, upper), from the beta quantiles (scipy.stats.beta.ppf)
KNOWN = [
    ((0, 100, 0.01), (0.0, 0.045007413978564)),
    ((5, 100, 0.01), (0.012968921327023, 0.125851730697679)),
    ((100, 100, 0.01), (0.954992586021436, 1.0)),
    ((3, 20000, 1e-4), (4.309008921653e-06, 0.000795433861137)),
]


@pytest.mark.parametrize(("args", "expected"), KNOWN)
def test_clopper_pearson_matches_beta_quantiles(args: tuple[int, int, float],
                                                expected: tuple[float, float]) -> None:
    lower, upper = clopper_pearson(*args)
    assert lower == pytest.approx(expected[0], rel=1e-6, abs=1e-12)
    assert upper == pytest.approx(expected[1], rel=1e-6, abs=1e-12)


def _laplace_releases(center: float, scale: float, n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"type": "value", "value": float(center + x)} for x in rng.laplace(0, scale, n)]


def test_honest_laplace_bound_stays_below_epsilon() -> None:
    # Laplace(1) on neighbours at distance 1 is exactly 1-DP.
    for seed in range(3):
        bound = epsilon_lower_bound(_laplace_releases(100, 1.0, 4000, seed),
                                    _laplace_releases(101, 1.0, 4000, seed + 10), 0.0)
        assert 0.3 < bound.epsilon_lb <= 1.0, bound


def test_half_the_noise_is_caught() -> None:
    bound = epsilon_lower_bound(_laplace_releases(100, 0.5, 2000, 1),
                                _laplace_releases(101, 0.5, 2000, 2), 0.0)
    assert bound.epsilon_lb > 1.2, bound


def test_key_present_only_on_d_prime_is_caught_unless_delta_covers_it() -> None:
    table = {"type": "table", "columns": ["k", "n"], "dtypes": ["string", "float"]}
    on_d = [{**table, "rows": [["a", 10.0]]}] * 400
    on_dp = [{**table, "rows": [["a", 10.0], ["new", 1.0]]}] * 400
    assert epsilon_lower_bound(on_d, on_dp, 0.0).epsilon_lb > 3
    # a key released with probability at most delta is what a charged delta allows
    rare = [{**table, "rows": [["a", 10.0], ["new", 1.0]] if i == 0 else [["a", 10.0]]}
            for i in range(400)]
    assert epsilon_lower_bound(on_d, rare, 0.01).epsilon_lb == 0.0


def test_features_of_tables_and_values() -> None:
    got = features({"type": "table", "columns": ["g", "n"], "dtypes": ["string", "int"],
                    "rows": [["a", 3], ["b", None]]})
    assert got == {"#rows": 2.0, "key[a]": 1.0, "n@a": 3.0, "key[b]": 1.0}
    assert features({"type": "value", "value": [1.5, 2]}) == {"value#len": 2.0, "value[0]": 1.5,
                                                              "value[1]": 2.0}
    assert math.isnan(features({"type": "value", "value": None}).get("value", math.nan))
