"""The ``diffprivlib`` engine: trains DiffPrivLib pipelines described as data, returns them as data."""

from __future__ import annotations

import logging
import warnings
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from lomas_core.api import (
    Budget,
    DataHandle,
    DatasetInfo,
    Engine,
    InvalidQuery,
    PluginContext,
    results,
    to_decimal,
)
from lomas_engine_diffprivlib.fitting import (
    Plan,
    export_step,
    fit_pipeline,
    make_plan,
    predict,
    prepare_arrays,
    split,
    trial_rows,
)
from lomas_engine_diffprivlib.query import DiffPrivLibQuery

__all__ = ["DiffPrivLibEngine", "DiffPrivLibOptions", "charge"]

log = logging.getLogger("lomas.engines.diffprivlib")


class DiffPrivLibOptions(BaseModel):
    """``engines.diffprivlib`` options in the server config."""

    model_config = ConfigDict(extra="forbid")

    #: Largest public row count (``rows`` in the metadata) this engine trains on.
    max_rows: int = Field(default=2_000_000, ge=1)


def charge(query: DiffPrivLibQuery, max_ids: int) -> Budget:
    """The cost: the steps' epsilons (DiffPrivLib's own accounting: sequential composition, pure
    epsilon, delta 0) plus the score's, times ``max_ids`` (group privacy: one person may own up to
    ``max_ids`` rows)."""
    parts = [*query.epsilons(), *([query.score_epsilon] if query.score_epsilon else [])]
    total = sum((to_decimal(e) for e in parts), Decimal(0))
    return Budget.of(total * max_ids, 0)


def _strict_warnings() -> None:
    """DiffPrivLib warnings that mean a data-derived default or an ignored argument are errors."""
    from diffprivlib.utils import DiffprivlibCompatibilityWarning, PrivacyLeakWarning

    warnings.filterwarnings("error", category=PrivacyLeakWarning)
    warnings.filterwarnings("error", category=DiffprivlibCompatibilityWarning)


class DiffPrivLibEngine(Engine):
    """Runs ``{"pipeline": [{"step": ..., "params": {...}}, ...], "feature_columns": [...], ...}``."""

    Options: ClassVar[type[BaseModel]] = DiffPrivLibOptions
    Query: ClassVar[type[BaseModel]] = DiffPrivLibQuery
    preload = ("diffprivlib", "sklearn", "scipy.stats", "pandas")

    def __init__(self, options: DiffPrivLibOptions | None = None,
                 context: PluginContext | None = None) -> None:
        # The core validated the options against ``Options`` (None: the defaults, for tests).
        self.options = options or DiffPrivLibOptions()
        self._log = context.logger if context is not None else log
        import diffprivlib  # noqa: F401 - fail at start-up, not at the first query

        _strict_warnings()

    # -- public inputs only ------------------------------------------------------------------------
    def _plan(self, query: DiffPrivLibQuery, dataset: DatasetInfo) -> Plan:
        plan = make_plan(query, dataset.metadata, max_rows=self.options.max_rows)
        self._trial(plan)
        return plan

    @staticmethod
    def _trial(plan: Plan) -> None:
        """Fit the pipeline once on a few public rows made from the bounds: a PrivacyLeakWarning,
        an ignored argument or a parameter DiffPrivLib refuses shows up here, before any charge."""
        from diffprivlib.accountant import BudgetAccountant
        from diffprivlib.utils import DiffprivlibCompatibilityWarning, PrivacyLeakWarning

        X, y = trial_rows(plan)
        try:
            # No catch_warnings here: it is not thread-safe. The filters set at start-up make
            # both warnings raise; build_estimator also refuses a missing bound outright.
            fit_pipeline(plan, X, y, BudgetAccountant, trial=True)
        except (PrivacyLeakWarning, DiffprivlibCompatibilityWarning) as exc:
            raise InvalidQuery(f"DiffPrivLib would not be differentially private with this pipeline "
                               f"({type(exc).__name__}); the server supplies bounds, norms and "
                               "classes from the metadata") from None
        except InvalidQuery:
            raise
        except Exception as exc:  # noqa: BLE001 - library refusal on public inputs only
            reason = " ".join(str(exc).split())[:200]
            raise InvalidQuery(f"DiffPrivLib refused the pipeline: {reason}") from None

    def cost(self, query: Any, dataset: DatasetInfo) -> Budget:
        self._plan(query, dataset)
        return charge(query, dataset.metadata.max_ids)

    # -- after the charge ----------------------------------------------------------------------------
    def run(self, query: Any, data: DataHandle, dataset: DatasetInfo) -> Any:
        return results.value(self.fit(query, data, dataset)[0])

    def fit(self, query: DiffPrivLibQuery, data: DataHandle,
            dataset: DatasetInfo) -> tuple[dict[str, Any], list[Any]]:
        """The JSON model and the fitted estimators (the latter for tests and benchmarks)."""
        from diffprivlib.accountant import BudgetAccountant

        plan = make_plan(query, dataset.metadata, max_rows=self.options.max_rows)
        frame = data.pandas()
        if len(frame) > 10 * plan.rows + 1000 and data.dummy:
            raise InvalidQuery("the dummy dataset is larger than this engine trains on")
        X, y = prepare_arrays(plan, frame, resize=not data.dummy)
        (X_train, y_train), (X_test, y_test) = split(plan, X, y, dummy=data.dummy)
        fitted = fit_pipeline(plan, X_train, y_train, BudgetAccountant)
        model: dict[str, Any] = {
            "steps": [export_step(s, e, plan) for s, e in zip(query.pipeline, fitted, strict=True)],
            "feature_columns": list(query.feature_columns),
            "target_columns": list(query.target_columns),
            "classes": plan.classes,
            "score": None,
            "score_kind": None,
            "n_train": int(len(X_train)),
            "n_test": int(len(X_test)),
        }
        if query.score_epsilon is not None and len(X_test) > 0:
            model["score"] = _noisy_accuracy(fitted, X_test, y_test, query.score_epsilon)
            model["score_kind"] = "accuracy"
        return model, fitted


def _noisy_accuracy(fitted: list[Any], X_test: Any, y_test: Any, epsilon: float) -> float:
    """Correct predictions on the held-out rows, counted with the geometric mechanism (sensitivity
    one: for a fixed model, one changed test row changes the count by at most one), over the public
    number of test rows."""
    import numpy as np
    from diffprivlib.mechanisms import GeometricTruncated

    n = len(X_test)
    correct = int(np.sum(predict(fitted, X_test) == y_test))
    mech = GeometricTruncated(epsilon=epsilon, sensitivity=1, lower=0, upper=n)
    return float(mech.randomise(correct)) / n
