"""Cost: DiffPrivLib's own accountant on the same pipeline, computed from metadata alone."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from dpl_testdata import METADATA, payload

from lomas_core.engine import DatasetInfo
from lomas_core.metadata import Metadata

PIPELINES: list[dict[str, Any]] = [
    payload(("LogisticRegression", {"epsilon": 1.0}), target_columns=["label"]),
    payload(("StandardScaler", {"epsilon": 0.3}), ("PCA", {"epsilon": 0.4, "n_components": 2}),
            ("LogisticRegression", {"epsilon": 0.7, "C": 2.0}), target_columns=["kind"]),
    payload(("StandardScaler", {}), ("GaussianNB", {"epsilon": 0.25}), target_columns=["kind"]),
    payload(("LinearRegression", {"epsilon": 2.0}), target_columns=["value"]),
    payload(("PCA", {"epsilon": 0.5, "n_components": 1, "centered": True}),
            ("KMeans", {"epsilon": 0.5, "n_clusters": 4})),
    payload(("StandardScaler", {"epsilon": 0.2, "with_std": False})),
]


@pytest.mark.parametrize("body", PIPELINES)
def test_cost_equals_diffprivlib_accountant(engine: Any, dataset: DatasetInfo,
                                            body: dict[str, Any]) -> None:
    from diffprivlib.accountant import BudgetAccountant
    from lomas_engine_diffprivlib.fitting import fit_pipeline, make_plan, trial_rows

    query = engine.parse(body)
    cost = engine.cost(query, dataset)
    # DiffPrivLib's accountant, shared by every step of the same pipeline, fitted on public rows.
    plan = make_plan(query, dataset.metadata, max_rows=10**7)
    accountant = BudgetAccountant()
    X, y = trial_rows(plan)
    fit_pipeline(plan, X, y, lambda: accountant)
    eps, delta = accountant.total()
    assert float(cost.epsilon) == pytest.approx(eps, rel=1e-12)
    assert cost.delta == delta == 0
    assert len(accountant.spent_budget) == len(body["pipeline"])


def test_cost_is_deterministic_and_reads_no_data(engine: Any, dataset: DatasetInfo,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from lomas_core.data import DataHandle

    def boom(*_: Any, **__: Any) -> Any:
        raise AssertionError("cost read data")

    monkeypatch.setattr(DataHandle, "pandas", boom)
    costs = {engine.cost(engine.parse(PIPELINES[1]), dataset) for _ in range(5)}
    assert len(costs) == 1
    assert float(next(iter(costs)).epsilon) == pytest.approx(1.4)


def test_score_epsilon_is_charged_on_top(engine: Any, dataset: DatasetInfo) -> None:
    body = payload(("LogisticRegression", {"epsilon": 1.0}), target_columns=["label"],
                   score_epsilon=0.25)
    assert float(engine.cost(engine.parse(body), dataset).epsilon) == pytest.approx(1.25)


def test_default_epsilon_is_diffprivlibs(engine: Any, dataset: DatasetInfo) -> None:
    body = payload(("GaussianNB", {}), target_columns=["label"])
    assert float(engine.cost(engine.parse(body), dataset).epsilon) == pytest.approx(1.0)


@pytest.mark.parametrize("max_ids", [1, 3])
def test_charge_scales_with_max_ids(engine: Any, max_ids: int) -> None:
    meta = Metadata.model_validate({**METADATA, "max_ids": max_ids})
    info = DatasetInfo(name="plane", metadata=meta)
    body = payload(("LogisticRegression", {"epsilon": 0.5}), target_columns=["label"])
    assert float(engine.cost(engine.parse(body), info).epsilon) == pytest.approx(0.5 * max_ids)


def test_fitted_values_have_public_shapes(engine: Any, dataset: DatasetInfo) -> None:
    """Classes and shapes come from the metadata: a class absent from the data is still there."""
    import pyarrow as pa

    from lomas_core.data import DataHandle

    t = pa.table({"x1": np.linspace(-1, 1, 50), "x2": np.linspace(1, -1, 50),
                  "label": ["neg"] * 50, "kind": ["a"] * 50, "value": np.zeros(50),
                  "free": np.zeros(50), "pid": np.arange(50)})
    for target in ("label", "kind"):
        body = payload(("GaussianNB", {}), target_columns=[target])
        got = engine.run(engine.parse(body), DataHandle("plane", "v", t), dataset)["value"]
        fitted = got["steps"][0]["fitted"]
        classes = METADATA["columns"][target]["categories"]
        assert fitted["classes_"] == classes
        assert np.asarray(fitted["theta_"]).shape == (len(classes), 2)
        assert got["n_train"] == METADATA["rows"] - int(METADATA["rows"] * 0.2) + len(classes)
