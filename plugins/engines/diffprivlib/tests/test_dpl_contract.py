"""The shared engine contract, run on the diffprivlib engine."""

from __future__ import annotations

from typing import Any

import pytest

from lomas_core.testing.engine_contract import EngineContract


def _steps(*steps: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"step": s, "params": p} for s, p in steps]


class TestDiffPrivLibContract(EngineContract):
    engine_name = "diffprivlib"
    heavy_modules = ("diffprivlib", "sklearn")

    @pytest.fixture
    def valid_payloads(self) -> list[dict[str, Any]]:
        return [
            {"pipeline": _steps(("StandardScaler", {"epsilon": 0.5}),
                                ("LogisticRegression", {"epsilon": 1.0})),
             "feature_columns": ["age", "income"], "target_columns": ["group"]},
            {"pipeline": _steps(("GaussianNB", {"epsilon": 1.0})),
             "feature_columns": ["age", "income"], "target_columns": ["flag"],
             "score_epsilon": 0.5},
            {"pipeline": _steps(("KMeans", {"epsilon": 1.0, "n_clusters": 3})),
             "feature_columns": ["age", "income"]},
            {"pipeline": _steps(("LinearRegression", {"epsilon": 1.0})),
             "feature_columns": ["age"], "target_columns": ["income"]},
        ]

    @pytest.fixture
    def invalid_payloads(self) -> list[dict[str, Any]]:
        return [
            {"pipeline": _steps(("LogisticRegression", {})), "feature_columns": ["group"],
             "target_columns": ["flag"]},
            {"pipeline": _steps(("LinearRegression", {})), "feature_columns": ["age"],
             "target_columns": ["group"]},
            {"pipeline": _steps(("GaussianNB", {})), "feature_columns": ["age"],
             "target_columns": ["income"]},
            {"pipeline": _steps(("PCA", {"n_components": 3})), "feature_columns": ["age"]},
        ]
