"""Building, feeding and exporting DiffPrivLib pipelines; every privacy input comes from metadata.

The plan (:class:`Plan`) is made from the payload and the public metadata only: feature bounds,
class labels, row counts. Running it:

1. selects the columns, drops or fills missing values with a public value, clips to the bounds;
2. on private data, resizes the table to exactly the metadata's ``rows`` (a random subsample when
   larger, public filler rows when smaller). DiffPrivLib's guarantees are for neighbouring datasets
   of the same size (one row replaced) and some fitted values depend on the exact row count; after
   the resize, adding or removing one person's row changes at most one row, so the size itself is
   public and DiffPrivLib's epsilon applies;
3. splits train/test with the payload's seed (positions only);
4. for classifiers, adds one public anchor row per declared class to the training rows, so every
   fitted model has exactly the declared classes whatever the data holds;
5. fits step by step with the server's bounds and norms (bounds of later steps are derived from the
   noisy fitted parameters of earlier ones: post-processing), each step with its own accountant;
6. exports the fitted parameters as JSON lists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lomas_core.api import (
    ColumnMetadata,
    InvalidQuery,
    Metadata,
)
from lomas_engine_diffprivlib.query import DiffPrivLibQuery, Step, public_params

__all__ = ["EXPORTED", "Plan", "build_estimator", "export_step", "make_plan"]

#: The fitted attributes released per step (noisy parameters of DP estimators, public shapes).
EXPORTED: dict[str, tuple[str, ...]] = {
    "StandardScaler": ("mean_", "var_", "scale_", "n_features_in_"),
    "PCA": ("components_", "mean_", "explained_variance_", "n_components_", "n_features_in_"),
    "LogisticRegression": ("coef_", "intercept_", "n_features_in_"),
    "GaussianNB": ("theta_", "var_", "class_prior_", "n_features_in_"),
    "LinearRegression": ("coef_", "intercept_", "n_features_in_"),
    "KMeans": ("cluster_centers_", "n_features_in_"),
}

Bounds = tuple[np.ndarray, np.ndarray]


@dataclass
class Plan:
    """Everything public a run needs, decided before any data is read."""

    query: DiffPrivLibQuery
    rows: int
    lower: np.ndarray
    upper: np.ndarray
    nullable: list[bool]
    classes: list[Any] | None = None
    target_bounds: tuple[float, float] | None = None
    target_nullable: bool = False
    n_test: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fill(self) -> np.ndarray:
        """The public value that replaces a missing feature (imputer_strategy)."""
        strategy = self.query.imputer_strategy
        if strategy == "lower":
            return self.lower.copy()
        if strategy == "upper":
            return self.upper.copy()
        return (self.lower + self.upper) / 2


def _bounds_of(name: str, col: ColumnMetadata) -> tuple[float, float]:
    if col.private_id:
        raise InvalidQuery(f"column {name!r} identifies individuals and cannot be a feature")
    if col.type == "boolean":
        return 0.0, 1.0
    if col.type not in ("int", "float"):
        raise InvalidQuery(f"feature {name!r} is a {col.type} column: features must be numbers or "
                           "booleans")
    if not col.bounded:
        raise InvalidQuery(f"feature {name!r} has no lower/upper bounds in the metadata: DiffPrivLib "
                           "would derive them from the data, which is not private")
    lo, hi = float(col.lower), float(col.upper)  # type: ignore[arg-type]
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InvalidQuery(f"feature {name!r} has infinite bounds")
    if hi - lo < 1e-9:
        hi = lo + 1e-9  # DiffPrivLib needs a non-empty range; a constant column stays constant
    return lo, hi


def _column(meta: Metadata, name: str) -> ColumnMetadata:
    try:
        return meta.column(name)
    except KeyError:
        raise InvalidQuery(f"unknown column {name[:80]!r}") from None


def make_plan(query: DiffPrivLibQuery, meta: Metadata, *, max_rows: int) -> Plan:
    """Check ``query`` against the metadata and fix every public input of the run."""
    if meta.rows is None:
        raise InvalidQuery("this dataset's metadata has no 'rows': the DiffPrivLib engine needs the "
                           "public row count")
    if meta.rows > max_rows:
        raise InvalidQuery(f"the dataset has more rows than this engine trains on ({max_rows})")
    bounds = [_bounds_of(n, _column(meta, n)) for n in query.feature_columns]
    lower = np.array([b[0] for b in bounds], dtype=float)
    upper = np.array([b[1] for b in bounds], dtype=float)
    plan = Plan(query=query, rows=int(meta.rows), lower=lower, upper=upper,
                nullable=[_column(meta, n).nullable for n in query.feature_columns])
    n_features = len(query.feature_columns)
    width = n_features
    for step in query.pipeline:
        params = public_params(step)
        if step.step == "PCA":
            if params["n_components"] > width:
                raise InvalidQuery(f"PCA n_components ({params['n_components']}) is larger than "
                                   f"the number of features ({width})")
            width = params["n_components"]
        if step.step == "KMeans" and params["n_clusters"] > max(plan.rows, 1):
            raise InvalidQuery("KMeans n_clusters is larger than the dataset's row count")
    plan.n_test = int(math.floor(plan.rows * query.test_size))
    if plan.rows - plan.n_test < 1:
        raise InvalidQuery("no training rows are left after the test split")
    if query.score_epsilon is not None and plan.n_test < 1:
        raise InvalidQuery("the test split is empty: no score can be computed")
    if query.target_columns:
        name = query.target_columns[0]
        col = _column(meta, name)
        if col.private_id:
            raise InvalidQuery(f"column {name!r} identifies individuals and cannot be a target")
        plan.target_nullable = col.nullable
        if query.final_kind == "classifier":
            if col.categories:
                plan.classes = list(col.categories)
            elif col.type == "boolean":
                plan.classes = [False, True]
            else:
                raise InvalidQuery(f"target {name!r} has no declared categories in the metadata: a "
                                   "classifier's classes would be read from the data")
            if len(plan.classes) < 2:
                raise InvalidQuery(f"target {name!r} declares fewer than two categories")
            if len(plan.classes) > 100:
                raise InvalidQuery(f"target {name!r} declares more than 100 categories")
        else:
            if col.type not in ("int", "float") or not col.bounded:
                raise InvalidQuery(f"regression target {name!r} must be a number with lower/upper "
                                   "bounds in the metadata")
            plan.target_bounds = (float(col.lower), float(col.upper))  # type: ignore[arg-type]
            if plan.target_bounds[1] - plan.target_bounds[0] < 1e-9:
                plan.target_bounds = (plan.target_bounds[0], plan.target_bounds[0] + 1e-9)
    return plan


# -- estimators ---------------------------------------------------------------------------------------
def _norm(lower: np.ndarray, upper: np.ndarray) -> float:
    """The largest L2 norm of a point in the box [lower, upper]."""
    return float(np.linalg.norm(np.maximum(np.abs(lower), np.abs(upper)))) or 1e-9


#: Per step, the attributes that must be set for DiffPrivLib not to read them from the data.
PRIVACY_ATTRS: dict[str, tuple[str, ...]] = {
    "StandardScaler": ("bounds",),
    "PCA": ("bounds", "data_norm"),
    "LogisticRegression": ("data_norm",),
    "GaussianNB": ("bounds",),
    "LinearRegression": ("bounds_X", "bounds_y"),
    "KMeans": ("bounds",),
}


def build_estimator(step: Step, bounds: Bounds, plan: Plan, accountant: Any, *,
                    trial: bool = False) -> Any:
    """A DiffPrivLib estimator for ``step``; refuses one whose privacy parameters are unset."""
    est = _estimator(step, bounds, plan, accountant, trial=trial)
    missing = [a for a in PRIVACY_ATTRS[step.step] if getattr(est, a, None) is None]
    if missing:
        raise InvalidQuery(f"{step.step}: {', '.join(missing)} would be read from the data")
    return est


def _estimator(step: Step, bounds: Bounds, plan: Plan, accountant: Any, *,
               trial: bool = False) -> Any:
    """A DiffPrivLib estimator for ``step`` with the server's bounds/norms/classes (``trial``: a
    check fit on public rows, with the solver's iterations capped)."""
    import diffprivlib.models as m

    params = public_params(step)
    if trial and "max_iter" in params:
        params["max_iter"] = min(params["max_iter"], 5)
    lower, upper = bounds
    box = (lower.copy(), upper.copy())
    if step.step == "StandardScaler":
        return m.StandardScaler(bounds=box, accountant=accountant, **params)
    if step.step == "PCA":
        norm = _norm(lower, upper) if params["centered"] else float(np.linalg.norm(upper - lower))
        return m.PCA(bounds=box, data_norm=max(norm, 1e-9), accountant=accountant, **params)
    if step.step == "LogisticRegression":
        return m.LogisticRegression(data_norm=_norm(lower, upper), accountant=accountant, **params)
    if step.step == "GaussianNB":
        return m.GaussianNB(bounds=box, accountant=accountant, **params)
    if step.step == "LinearRegression":
        assert plan.target_bounds is not None
        return m.LinearRegression(bounds_X=box, bounds_y=plan.target_bounds, accountant=accountant,
                                  **params)
    if step.step == "KMeans":
        return m.KMeans(bounds=box, accountant=accountant, **params)
    raise InvalidQuery(f"unknown step {step.step!r}")  # unreachable: the query model checked it


def next_bounds(step: Step, fitted: Any, bounds: Bounds) -> Bounds:
    """Bounds of a transformer's output, from its input bounds and its (noisy) fitted values."""
    lower, upper = bounds
    if step.step == "StandardScaler":
        mean = fitted.mean_ if fitted.mean_ is not None else 0.0
        scale = fitted.scale_ if fitted.scale_ is not None else 1.0
        a, b = (lower - mean) / scale, (upper - mean) / scale
        return np.minimum(a, b), np.maximum(a, b)
    if step.step == "PCA":
        radius = float(np.linalg.norm(np.maximum(np.abs(lower - fitted.mean_),
                                                 np.abs(upper - fitted.mean_)))) or 1e-9
        k = int(fitted.n_components_)
        return np.full(k, -radius), np.full(k, radius)
    raise InvalidQuery(f"{step.step} is not a transformer")


def fit_pipeline(plan: Plan, X: np.ndarray, y: np.ndarray | None,
                 accountant_factory: Any, *, trial: bool = False) -> list[Any]:
    """Fit every step on ``X`` (and ``y``); returns the fitted estimators in order."""
    bounds: Bounds = (plan.lower.copy(), plan.upper.copy())
    fitted: list[Any] = []
    Xt = X
    for i, step in enumerate(plan.query.pipeline):
        est = build_estimator(step, bounds, plan, accountant_factory(), trial=trial)
        last = i == len(plan.query.pipeline) - 1
        if step.kind == "transformer":
            est.fit(Xt)
            if not last:
                Xt = est.transform(Xt)
                bounds = next_bounds(step, est, bounds)
                Xt = np.clip(Xt, bounds[0], bounds[1])
        elif step.kind == "clusterer":
            est.fit(Xt)
        else:
            est.fit(Xt, y)
        fitted.append(est)
    return fitted


def predict(fitted: list[Any], X: np.ndarray) -> np.ndarray:
    """The final estimator's predictions after the transformers (server side)."""
    Xt = X
    for est in fitted[:-1]:
        Xt = est.transform(Xt)
    return np.asarray(fitted[-1].predict(Xt))


def _plain(value: Any) -> Any:
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64).tolist()
    return arr.astype(float).tolist()


def export_step(step: Step, est: Any, plan: Plan) -> dict[str, Any]:
    """One fitted step as JSON: its name, its parameters and its released fitted values."""
    fitted = {attr: _plain(getattr(est, attr, None)) for attr in EXPORTED[step.step]}
    if step.kind == "classifier":
        fitted["classes_"] = list(plan.classes or [])
    return {"step": step.step, "params": public_params(step), "fitted": fitted}


# -- data ---------------------------------------------------------------------------------------------
def prepare_arrays(plan: Plan, frame: Any, *, resize: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Features (clipped, imputed) and target (class indices or clipped numbers) from ``frame``."""
    import pandas as pd

    q = plan.query
    X = frame[q.feature_columns].astype("float64").to_numpy(copy=True)
    keep = np.ones(len(X), dtype=bool)
    missing = np.isnan(X)
    if q.imputer_strategy == "drop":
        keep &= ~missing.any(axis=1)
    else:
        X = np.where(missing, plan.fill, X)
    y: np.ndarray | None = None
    if q.target_columns:
        raw = frame[q.target_columns[0]]
        if plan.classes is not None:
            # Values outside the declared classes (and nulls) get code -1 and their rows are dropped.
            codes = np.asarray(pd.Categorical(raw, categories=plan.classes).codes, dtype=np.int64)
            keep &= codes >= 0
            y = codes
        else:
            assert plan.target_bounds is not None
            values = raw.astype("float64").to_numpy(copy=True)
            keep &= ~np.isnan(values)
            y = np.clip(values, *plan.target_bounds)
    X = np.clip(X[keep], plan.lower, plan.upper)
    y = y[keep] if y is not None else None
    if resize:
        X, y = _resize(plan, X, y)
    return X, y


def _filler(plan: Plan, count: int) -> tuple[np.ndarray, np.ndarray | None]:
    X = np.tile((plan.lower + plan.upper) / 2, (count, 1))
    if plan.classes is not None:
        return X, np.arange(count, dtype=np.int64) % len(plan.classes)
    if plan.target_bounds is not None:
        return X, np.full(count, sum(plan.target_bounds) / 2)
    return X, None


def _resize(plan: Plan, X: np.ndarray, y: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    n = plan.rows
    if len(X) > n:
        pick = np.sort(np.random.default_rng().choice(len(X), size=n, replace=False))
        return X[pick], (y[pick] if y is not None else None)
    if len(X) < n:
        fx, fy = _filler(plan, n - len(X))
        X = np.vstack([X, fx])
        if y is not None and fy is not None:
            y = np.concatenate([y, fy])
    return X, y


def split(plan: Plan, X: np.ndarray, y: np.ndarray | None, *, dummy: bool) -> tuple[Any, Any]:
    """(train, test) as (X, y) pairs; anchors added to the training rows of classifiers."""
    n = len(X)
    n_test = plan.n_test if not dummy else int(math.floor(n * plan.query.test_size))
    order = np.random.default_rng(plan.query.test_train_split_seed).permutation(n)
    test, train = order[:n_test], order[n_test:]
    X_train, y_train = X[train], (y[train] if y is not None else None)
    if plan.classes is not None:
        ax, ay = _filler(plan, len(plan.classes))
        X_train = np.vstack([X_train, ax])
        y_train = np.concatenate([y_train, ay]) if y_train is not None else ay
    return (X_train, y_train), (X[test], (y[test] if y is not None else None))


def trial_rows(plan: Plan) -> tuple[np.ndarray, np.ndarray | None]:
    """A small public table (corners and midpoints of the bounds) for a check fit before charging."""
    k = max(len(plan.classes or []), 2) * 2
    n_clusters = max((public_params(s).get("n_clusters", 1) for s in plan.query.pipeline), default=1)
    count = max(k, int(n_clusters) * 2, 8)
    t = (np.arange(count) % 3) / 2.0
    X = plan.lower + np.outer(t, plan.upper - plan.lower)
    y: np.ndarray | None = None
    if plan.classes is not None:
        y = np.arange(count, dtype=np.int64) % len(plan.classes)
    elif plan.target_bounds is not None:
        y = plan.target_bounds[0] + t * (plan.target_bounds[1] - plan.target_bounds[0])
    return X, y
