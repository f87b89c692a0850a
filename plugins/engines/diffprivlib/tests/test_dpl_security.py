"""Hostile payloads are refused by parse or cost: free, before any data is read."""

from __future__ import annotations

from typing import Any

import pytest
from dpl_testdata import METADATA, payload

from lomas_core.engine import DatasetInfo
from lomas_core.errors import InvalidQuery
from lomas_core.metadata import Metadata
from lomas_core.testing.plugins import build

LR = ("LogisticRegression", {"epsilon": 1.0})

HOSTILE: dict[str, dict[str, Any]] = {
    "unknown estimator": payload(("SVC", {}), target_columns=["label"]),
    "sklearn non-DP estimator": payload(("sklearn.linear_model.LogisticRegression", {}),
                                        target_columns=["label"]),
    "callable name": payload(("os.system", {"command": "id"})),
    "dunder name": payload(("__import__", {})),
    "callable parameter": payload(("LogisticRegression", {"solver": "os.system"}),
                                  target_columns=["label"]),
    "nested object parameter": payload(("LogisticRegression", {"C": {"__reduce__": "x"}}),
                                       target_columns=["label"]),
    "list parameter": payload(("KMeans", {"n_clusters": [1, 2]})),
    "nested step": {"pipeline": [{"step": "KMeans", "params": {}, "steps": []}],
                    "feature_columns": ["x1"]},
    "pickle blob": {"pipeline": "gASVKAAAAAAAAACMBXBvc2l4lIwGc3lzdGVtlJOUjAJpZJSFlFKULg==",
                    "feature_columns": ["x1"]},
    "huge n_clusters": payload(("KMeans", {"n_clusters": 10**9})),
    "huge n_estimators": payload(("RandomForestClassifier", {"n_estimators": 10**9}),
                                 target_columns=["label"]),
    "n_estimators on another step": payload(("GaussianNB", {"n_estimators": 10**9,
                                                            "max_depth": 10**6}),
                                            target_columns=["label"]),
    "huge max_iter": payload(("LogisticRegression", {"max_iter": 10**9}),
                             target_columns=["label"]),
    "huge n_components": payload(("PCA", {"n_components": 10**6})),
    "too many steps": payload(*[("StandardScaler", {})] * 20),
    "bounds from payload": payload(("GaussianNB", {"bounds": [-100, 100]}),
                                   target_columns=["label"]),
    "data_norm from payload": payload(("LogisticRegression", {"data_norm": 0.001}),
                                      target_columns=["label"]),
    "classes from payload": payload(("GaussianNB", {"classes": "neg"}), target_columns=["label"]),
    "random_state fixes the noise": payload(("KMeans", {"random_state": 0})),
    "accountant": payload(("KMeans", {"accountant": None})),
    "infinite epsilon": payload(("KMeans", {"epsilon": float("inf")})),
    "zero epsilon": payload(("KMeans", {"epsilon": 0})),
    "string epsilon": payload(("KMeans", {"epsilon": "1"})),
    "bool as int": payload(("KMeans", {"n_clusters": True})),
    "missing bounds": {"pipeline": [{"step": "KMeans", "params": {}}],
                       "feature_columns": ["x1", "free"]},
    "string feature": payload(("KMeans", {}), feature_columns=["label"]),
    "private id feature": {"pipeline": [{"step": "KMeans", "params": {}}],
                           "feature_columns": ["pid"]},
    "unknown column": {"pipeline": [{"step": "KMeans", "params": {}}],
                       "feature_columns": ["salary"]},
    "classifier on unbounded classes": payload(LR, target_columns=["value"]),
    "regressor without target bounds": payload(("LinearRegression", {}), target_columns=["free"]),
    "data-derived imputation": payload(LR, target_columns=["label"], imputer_strategy="mean"),
    "estimator before transformer": payload(LR, ("StandardScaler", {}), target_columns=["label"]),
    "classifier without target": payload(LR),
    "score without classifier": payload(("KMeans", {}), score_epsilon=1.0),
    "score without test rows": payload(LR, target_columns=["label"], score_epsilon=1.0,
                                       test_size=0),
    "test_size too large": payload(LR, target_columns=["label"], test_size=0.9),
    "target among features": payload(LR, target_columns=["x1"]),
    "extra top-level field": {**payload(LR, target_columns=["label"]), "code": "print(1)"},
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_payload_refused_free(engine: Any, dataset: DatasetInfo,
                                      monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    from lomas_core.data import DataHandle

    monkeypatch.setattr(DataHandle, "pandas", lambda *_: pytest.fail("data was read"))
    with pytest.raises(InvalidQuery) as info:
        engine.cost(engine.parse(HOSTILE[name]), dataset)
    message = str(info.value)
    assert "Traceback" not in message and len(message) < 1200


def test_server_parameter_refusal_says_why(engine: Any) -> None:
    with pytest.raises(InvalidQuery, match="set by the server"):
        engine.parse(HOSTILE["data_norm from payload"])


def test_metadata_without_rows_refused(engine: Any) -> None:
    meta = Metadata.model_validate({k: v for k, v in METADATA.items() if k != "rows"})
    with pytest.raises(InvalidQuery, match="rows"):
        engine.cost(engine.parse(payload(LR, target_columns=["label"])),
                    DatasetInfo(name="p", metadata=meta))


def _unbounded_nb(monkeypatch: pytest.MonkeyPatch) -> None:
    import lomas_engine_diffprivlib.fitting as fitting

    def unbounded(step: Any, bounds: Any, plan: Any, accountant: Any, **_: Any) -> Any:
        from diffprivlib.models import GaussianNB

        return GaussianNB(accountant=accountant)  # bounds left to DiffPrivLib: read from data

    monkeypatch.setattr(fitting, "_estimator", unbounded)


def test_missing_bound_refused_before_charge(engine: Any, dataset: DatasetInfo,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _unbounded_nb(monkeypatch)
    with pytest.raises(InvalidQuery, match="read from the data"):
        engine.cost(engine.parse(payload(("GaussianNB", {}), target_columns=["label"])), dataset)


@pytest.mark.filterwarnings("error::diffprivlib.utils.PrivacyLeakWarning")
def test_privacy_leak_warning_refused_before_charge(engine: Any, dataset: DatasetInfo,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import lomas_engine_diffprivlib.fitting as fitting

    _unbounded_nb(monkeypatch)
    monkeypatch.setattr(fitting, "PRIVACY_ATTRS", {"GaussianNB": ()})
    with pytest.raises(InvalidQuery, match="PrivacyLeakWarning"):
        engine.cost(engine.parse(payload(("GaussianNB", {}), target_columns=["label"])), dataset)


def test_engine_makes_leak_warnings_errors() -> None:
    import warnings

    from diffprivlib.utils import PrivacyLeakWarning
    from lomas_engine_diffprivlib.engine import DiffPrivLibEngine

    with warnings.catch_warnings():
        warnings.resetwarnings()
        build(DiffPrivLibEngine, {})
        with pytest.raises(PrivacyLeakWarning):
            warnings.warn("leak", PrivacyLeakWarning, stacklevel=1)
