"""The statistical part of the audit: a lower bound on epsilon from samples on D and D'.

The method is the event-ratio test of published DP testers (DP-Sniper; the statistical tester
of Google's DP library): an (epsilon, delta)-DP mechanism M satisfies, for every event E,

    P[M(D') in E] <= exp(epsilon) * P[M(D) in E] + delta      (and the same with D, D' swapped).

Each release is turned into scalar *features* (every numeric cell, keyed by its row's key cells;
the presence of every key; the row count). Candidate events are one-sided thresholds on a feature
at quantiles of the pooled samples, and key presence/absence. Events are *chosen* on the first
half of the samples and *evaluated* on the second half, so the choice does not bias the bound.
For each chosen event, Clopper-Pearson bounds give, with the stated confidence,
``p_hi >= P[M(D) in E]`` and ``p_lo <= P[M(D') in E]``, hence the lower bound

    epsilon >= log((p_lo - delta) / p_hi).

All bounds of one test hold together with probability at least ``1 - alpha`` (Bonferroni).
Only numpy is needed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["EpsilonBound", "clopper_pearson", "epsilon_lower_bound", "features"]

_NUMERIC = ("int", "float")


def _log_binom_pmf(n: int, p: float) -> np.ndarray:
    """log P[Bin(n, p) = i] for i = 0..n."""
    i = np.arange(n + 1)
    logfact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1)))])
    with np.errstate(divide="ignore"):
        return (logfact[n] - logfact[i] - logfact[n - i]
                + i * np.log(p) + (n - i) * np.log1p(-p))


def _binom_cdf(k: int, n: int, p: float) -> float:
    """P[Bin(n, p) <= k], summed in log space (exact enough for n up to millions)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    logs = _log_binom_pmf(n, p)[: k + 1]
    top = float(np.max(logs))
    return float(min(1.0, math.exp(top) * float(np.sum(np.exp(logs - top)))))


def _bisect(f: Any, lo: float, hi: float) -> float:
    """The root of a decreasing ``f`` on [lo, hi] (60 halvings: ~1e-18 wide)."""
    for _ in range(60):
        mid = (lo + hi) / 2
        if f(mid) > 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def clopper_pearson(k: int, n: int, alpha: float) -> tuple[float, float]:
    """One-sided Clopper-Pearson bounds on a binomial proportion from ``k`` successes in ``n``.

    Returns ``(lower, upper)`` where each holds on its own with probability at least
    ``1 - alpha`` (they are the ``alpha`` and ``1 - alpha`` quantiles of the beta posteriors).
    """
    if n <= 0:
        return 0.0, 1.0
    # lower: the p with P[Bin(n,p) >= k] = alpha; upper: the p with P[Bin(n,p) <= k] = alpha.
    lower = 0.0 if k == 0 else _bisect(lambda p: alpha - (1.0 - _binom_cdf(k - 1, n, p)), 0.0, 1.0)
    upper = 1.0 if k == n else _bisect(lambda p: _binom_cdf(k, n, p) - alpha, 0.0, 1.0)
    return lower, upper


# -- features of a release --------------------------------------------------------------------------
def _flatten(prefix: str, value: Any, out: dict[str, float]) -> None:
    if isinstance(value, bool):
        out[prefix] = float(value)
    elif isinstance(value, (int, float)):
        out[prefix] = float(value)
    elif isinstance(value, Mapping):
        out[f"{prefix}#keys"] = float(len(value))
        for k, v in value.items():
            _flatten(f"{prefix}.{k}", v, out)
    elif isinstance(value, (list, tuple)):
        out[f"{prefix}#len"] = float(len(value))
        for i, v in enumerate(value):
            _flatten(f"{prefix}[{i}]", v, out)


def features(result: Any) -> dict[str, float]:
    """Scalar features of one JSON result (see the module docstring). Absent features are NaN."""
    out: dict[str, float] = {}
    if isinstance(result, Mapping) and result.get("type") == "table":
        columns = list(result.get("columns") or [])
        dtypes = list(result.get("dtypes") or [])
        keyed = [i for i, t in enumerate(dtypes) if t not in _NUMERIC]
        rows = result.get("rows") or []
        out["#rows"] = float(len(rows))
        for r, row in enumerate(rows):
            key = "|".join(str(row[i]) for i in keyed) if keyed else str(r)
            out[f"key[{key}]"] = 1.0
            for i, cell in enumerate(row):
                if i not in keyed:
                    _flatten(f"{columns[i]}@{key}", cell, out)
    elif isinstance(result, Mapping) and result.get("type") == "value":
        _flatten("value", result.get("value"), out)
    else:
        _flatten("value", result, out)
    return out


# -- the test ----------------------------------------------------------------------------------------
@dataclass
class EpsilonBound:
    """The outcome of one test: the lower bound and the event that gave it."""

    epsilon_lb: float
    event: str
    p_lo: float
    p_hi: float
    samples: int

    def as_dict(self) -> dict[str, Any]:
        return {"epsilon_lb": self.epsilon_lb, "event": self.event, "p_lo": self.p_lo,
                "p_hi": self.p_hi, "samples": self.samples}


def _matrix(samples: Sequence[Mapping[str, float]], names: Sequence[str]) -> np.ndarray:
    return np.array([[s.get(n, math.nan) for n in names] for s in samples], dtype=float)


def _events(pool: np.ndarray, names: Sequence[str], quantiles: int) -> list[tuple[str, int, str, float]]:
    """Candidate events (label, feature index, op, threshold) from pooled first-half samples."""
    events: list[tuple[str, int, str, float]] = []
    for j, name in enumerate(names):
        col = pool[:, j]
        present = ~np.isnan(col)
        if name.startswith("key[") or not present.all():
            events.append((f"{name} present", j, "present", 0.0))
            events.append((f"{name} absent", j, "absent", 0.0))
        values = col[present]
        if values.size == 0:
            continue
        cuts = np.unique(np.quantile(values, np.linspace(0.0, 1.0, quantiles + 2)[1:-1]))
        for t in cuts:
            events.append((f"{name} > {t:.6g}", j, ">", float(t)))
            events.append((f"{name} <= {t:.6g}", j, "<=", float(t)))
    return events


def _hits(x: np.ndarray, op: str, t: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        if op == "present":
            return ~np.isnan(x)
        if op == "absent":
            return np.isnan(x)
        if op == ">":
            return x > t
        return x <= t


def epsilon_lower_bound(on_d: Sequence[Any], on_d_prime: Sequence[Any], delta: float, *,
                        alpha: float = 1e-3, quantiles: int = 24, chosen: int = 4) -> EpsilonBound:
    """A lower bound on the epsilon of the mechanism that produced ``on_d`` and ``on_d_prime``.

    Args:
        on_d, on_d_prime: JSON results of repeated releases on D and on D'.
        delta: the delta the mechanism was charged.
        alpha: the probability that the bound is wrong (all events and both directions together).
        quantiles: thresholds per feature among the candidates.
        chosen: how many (event, direction) pairs are kept from the first half for evaluation.
    """
    fa = [features(r) for r in on_d]
    fb = [features(r) for r in on_d_prime]
    names = sorted(set().union(*fa, *fb)) if fa or fb else []
    half_a, half_b = len(fa) // 2, len(fb) // 2
    if not names or half_a < 2 or half_b < 2:
        return EpsilonBound(0.0, "(no features)", 0.0, 1.0, len(fa) + len(fb))
    a, b = _matrix(fa, names), _matrix(fb, names)
    pool = np.vstack([a[:half_a], b[:half_b]])
    candidates = _events(pool, names, quantiles)
    # Choose on the first half: rank by a loose (alpha 0.05) bound, so rare events do not win.
    scored: list[tuple[float, int, bool]] = []
    for idx, (_, j, op, t) in enumerate(candidates):
        ka = int(_hits(a[:half_a, j], op, t).sum())
        kb = int(_hits(b[:half_b, j], op, t).sum())
        for swap, (k_num, n_num, k_den, n_den) in ((False, (kb, half_b, ka, half_a)),
                                                   (True, (ka, half_a, kb, half_b))):
            lo, _ = _loose(k_num, n_num)
            _, hi = _loose(k_den, n_den)
            score = math.log(max(lo - delta, 1e-300) / max(hi, 1e-300))
            scored.append((score, idx, swap))
    scored.sort(reverse=True)
    picks = scored[:chosen]
    per_bound = alpha / (2 * max(len(picks), 1))
    best = EpsilonBound(0.0, "(none)", 0.0, 1.0, len(fa) + len(fb))
    ea, eb = a[half_a:], b[half_b:]
    for _, idx, swap in picks:
        label, j, op, t = candidates[idx]
        ka, kb = int(_hits(ea[:, j], op, t).sum()), int(_hits(eb[:, j], op, t).sum())
        num, den = ((ka, len(ea)), (kb, len(eb))) if swap else ((kb, len(eb)), (ka, len(ea)))
        p_lo, _ = clopper_pearson(num[0], num[1], per_bound)
        _, p_hi = clopper_pearson(den[0], den[1], per_bound)
        if p_lo - delta <= 0:
            continue
        eps = math.log((p_lo - delta) / p_hi)
        if eps > best.epsilon_lb:
            where = "D vs D'" if swap else "D' vs D"
            best = EpsilonBound(eps, f"{label} ({where})", p_lo, p_hi, len(fa) + len(fb))
    return best


def _loose(k: int, n: int) -> tuple[float, float]:
    """Cheap normal-approximation bounds used only to rank events on the first half."""
    p = (k + 0.5) / (n + 1.0)
    w = 1.645 * math.sqrt(p * (1 - p) / (n + 1.0))
    return max(p - w, 0.0), min(p + w, 1.0)

