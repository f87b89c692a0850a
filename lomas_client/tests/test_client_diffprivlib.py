"""The client's DiffPrivLib helpers without a server: payloads as data, models rebuilt from JSON."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
from lomas_client.diffprivlib_model import make_payload, step


def test_payload_is_plain_data() -> None:
    body = make_payload([step("StandardScaler", epsilon=0.5), ("LogisticRegression", {"C": 2.0})],
                        ["a", "b"], ["y"], score_epsilon=0.25)
    assert body == {"pipeline": [{"step": "StandardScaler", "params": {"epsilon": 0.5}},
                                 {"step": "LogisticRegression", "params": {"C": 2.0}}],
                    "feature_columns": ["a", "b"], "target_columns": ["y"], "test_size": 0.2,
                    "test_train_split_seed": 1, "imputer_strategy": "drop",
                    "score_epsilon": 0.25}


def test_client_imports_without_scikit_learn() -> None:
    code = ("import sys; import lomas_client; from lomas_client import Client; "
            "c = Client(url='http://127.0.0.1:9'); assert c.diffprivlib.engine == 'diffprivlib'; "
            "assert 'sklearn' not in sys.modules and 'diffprivlib' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_rebuilt_pipeline_predicts() -> None:
    pytest.importorskip("sklearn")
    np = importlib.import_module("numpy")
    from lomas_client.diffprivlib_model import rebuild

    raw = {"steps": [
        {"step": "StandardScaler", "params": {"epsilon": 1.0, "with_mean": True, "with_std": True},
         "fitted": {"mean_": [1.0, 0.0], "var_": [4.0, 1.0], "scale_": [2.0, 1.0],
                    "n_features_in_": 2}},
        {"step": "LogisticRegression", "params": {"epsilon": 1.0},
         "fitted": {"coef_": [[1.0, 1.0]], "intercept_": [0.0], "classes_": ["no", "yes"],
                    "n_features_in_": 2}}],
        "feature_columns": ["a", "b"], "target_columns": ["y"], "classes": ["no", "yes"],
        "score": 0.9}
    model = rebuild(raw)
    X = np.array([[3.0, 1.0], [-3.0, -1.0]])  # scaled: [1, 1] and [-2, -1]
    assert list(model.predict(X)) == ["yes", "no"]
    assert model.score == 0.9 and "LogisticRegression" in repr(model)
