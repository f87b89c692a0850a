"""DiffPrivLib payloads and models as data (no pickle): build a pipeline payload, rebuild a model.

The server answers a ``diffprivlib`` query with the fitted parameters of each step (JSON lists);
:func:`rebuild` turns them into a fitted scikit-learn ``Pipeline`` so that ``model.predict(X)``
works locally. Needs scikit-learn: ``pip install 'lomas-client[diffprivlib]'``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DiffPrivLibModel", "make_payload", "rebuild", "step"]


def step(name: str, **params: Any) -> dict[str, Any]:
    """One pipeline step, e.g. ``step("LogisticRegression", epsilon=1.0, max_iter=200)``."""
    return {"step": name, "params": params}


def make_payload(pipeline: list[Any], feature_columns: list[str],
                 target_columns: list[str] | None = None, *, test_size: float = 0.2,
                 test_train_split_seed: int = 1, imputer_strategy: str = "drop",
                 score_epsilon: float | None = None) -> dict[str, Any]:
    """The engine payload. ``pipeline`` items are :func:`step` dicts or ``(name, params)`` pairs."""
    steps = []
    for item in pipeline:
        if isinstance(item, dict):
            steps.append({"step": item["step"], "params": dict(item.get("params") or {})})
        else:
            name, params = item
            steps.append({"step": name, "params": dict(params or {})})
    body: dict[str, Any] = {"pipeline": steps, "feature_columns": list(feature_columns),
                            "target_columns": list(target_columns or []), "test_size": test_size,
                            "test_train_split_seed": test_train_split_seed,
                            "imputer_strategy": imputer_strategy}
    if score_epsilon is not None:
        body["score_epsilon"] = score_epsilon
    return body


def _array(value: Any) -> Any:
    import numpy as np

    return None if value is None else np.asarray(value, dtype=float)


def _estimator(spec: dict[str, Any]) -> Any:
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.preprocessing import StandardScaler

    name, params, fitted = spec["step"], spec.get("params") or {}, spec.get("fitted") or {}
    n_features = int(fitted.get("n_features_in_") or 0)
    est: Any
    if name == "StandardScaler":
        est = StandardScaler(with_mean=params.get("with_mean", True),
                             with_std=params.get("with_std", True))
        est.mean_, est.var_, est.scale_ = (_array(fitted.get(k)) for k in ("mean_", "var_", "scale_"))
    elif name == "PCA":
        est = PCA(n_components=int(fitted["n_components_"]))
        est.components_ = _array(fitted["components_"])
        est.mean_ = _array(fitted["mean_"])
        est.explained_variance_ = _array(fitted.get("explained_variance_"))
        est.n_components_ = int(fitted["n_components_"])
    elif name in ("LogisticRegression", "GaussianNB"):
        est = LogisticRegression() if name == "LogisticRegression" else GaussianNB()
        if name == "LogisticRegression":
            est.coef_, est.intercept_ = _array(fitted["coef_"]), _array(fitted["intercept_"])
        else:
            est.theta_, est.var_ = _array(fitted["theta_"]), _array(fitted["var_"])
            est.class_prior_ = _array(fitted["class_prior_"])
        est.classes_ = np.asarray(fitted["classes_"])
    elif name == "LinearRegression":
        est = LinearRegression()
        est.coef_, est.intercept_ = _array(fitted["coef_"]), _array(fitted["intercept_"])
    elif name == "KMeans":
        centers = _array(fitted["cluster_centers_"])
        est = KMeans(n_clusters=len(centers), n_init=1)
        est.cluster_centers_ = centers
        est._n_threads = 1
        est.labels_ = np.zeros(0, dtype=np.int32)
    else:
        raise ValueError(f"unknown DiffPrivLib step {name!r}")
    if n_features:
        est.n_features_in_ = n_features
    return est


class DiffPrivLibModel:
    """A model trained by the server: the fitted pipeline plus what came with it.

    Attributes:
        pipeline: a fitted ``sklearn.pipeline.Pipeline`` (``predict``, ``transform``, ...).
        feature_columns, target_columns: the columns the model reads and predicts.
        classes: the declared classes of a classifier's target (public), else None.
        score: the differentially private test accuracy (when ``score_epsilon`` was paid), else None.
        raw: the server's JSON model.
    """

    def __init__(self, raw: dict[str, Any]) -> None:
        from sklearn.pipeline import Pipeline

        self.raw = raw
        self.feature_columns: list[str] = list(raw.get("feature_columns") or [])
        self.target_columns: list[str] = list(raw.get("target_columns") or [])
        self.classes: list[Any] | None = raw.get("classes")
        self.score: float | None = raw.get("score")
        steps = [(f"{i}_{s['step'].lower()}", _estimator(s)) for i, s in enumerate(raw["steps"])]
        self.pipeline = Pipeline(steps)

    def _x(self, X: Any) -> Any:
        import numpy as np

        if hasattr(X, "columns"):
            X = X[self.feature_columns]
        return np.asarray(X, dtype=float)

    def predict(self, X: Any) -> Any:
        """Predictions for ``X`` (a DataFrame with the feature columns, or an array in their order)."""
        return self.pipeline.predict(self._x(X))

    def transform(self, X: Any) -> Any:
        """The transformers' output (pipelines without a final estimator)."""
        return self.pipeline.transform(self._x(X))

    def __repr__(self) -> str:
        names = " -> ".join(s["step"] for s in self.raw.get("steps", []))
        return f"DiffPrivLibModel({names}, score={self.score!r})"


def rebuild(raw: dict[str, Any]) -> DiffPrivLibModel:
    """A local model from the server's JSON model (the ``result`` of a diffprivlib query)."""
    return DiffPrivLibModel(raw)
