"""The ``diffprivlib`` query payload: a pipeline described as data, validated before anything else.

A payload names steps from an allow-list, each with plain JSON keyword parameters checked against
that step's own schema (types and ranges). Parameters that feed a privacy proof (bounds, norms,
classes) or that would fix the noise (``random_state``) are the server's and are refused here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    model_validator,
)

from lomas_core.api import validation_message

__all__ = ["SERVER_PARAMS", "STEPS", "DiffPrivLibQuery", "Step", "StepSpec"]

#: Parameters only the server sets (from metadata) or that no payload may set at all.
SERVER_PARAMS = frozenset({"bounds", "bounds_X", "bounds_y", "data_norm", "classes", "accountant",
                           "random_state", "n_jobs", "verbose", "warm_start", "copy", "copy_X",
                           "sample_weight", "priors"})

Epsilon = Field(default=1.0, gt=0, le=100, allow_inf_nan=False)


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    epsilon: float = Epsilon


class StandardScalerParams(_Params):
    with_mean: StrictBool = True
    with_std: StrictBool = True


class PCAParams(_Params):
    n_components: StrictInt = Field(ge=1, le=100)
    centered: StrictBool = False


class LogisticRegressionParams(_Params):
    C: float = Field(default=1.0, gt=0, le=1e4, allow_inf_nan=False)
    fit_intercept: StrictBool = True
    max_iter: StrictInt = Field(default=100, ge=1, le=1000)
    tol: float = Field(default=1e-4, gt=0, le=1, allow_inf_nan=False)


class GaussianNBParams(_Params):
    var_smoothing: float = Field(default=1e-9, ge=0, le=1, allow_inf_nan=False)


class LinearRegressionParams(_Params):
    fit_intercept: StrictBool = True


class KMeansParams(_Params):
    n_clusters: StrictInt = Field(default=8, ge=1, le=50)


class StepSpec(BaseModel):
    """What the engine knows about one allowed step."""

    kind: Literal["transformer", "classifier", "regressor", "clusterer"]
    params: type[_Params]


STEPS: dict[str, StepSpec] = {
    "StandardScaler": StepSpec(kind="transformer", params=StandardScalerParams),
    "PCA": StepSpec(kind="transformer", params=PCAParams),
    "LogisticRegression": StepSpec(kind="classifier", params=LogisticRegressionParams),
    "GaussianNB": StepSpec(kind="classifier", params=GaussianNBParams),
    "LinearRegression": StepSpec(kind="regressor", params=LinearRegressionParams),
    "KMeans": StepSpec(kind="clusterer", params=KMeansParams),
}

#: A parameter value: a JSON scalar (no objects, no lists, nothing callable).
Scalar = StrictBool | StrictInt | float | str | None


class Step(BaseModel):
    """One pipeline step: an allowed DiffPrivLib class name and its keyword parameters."""

    model_config = ConfigDict(extra="forbid")

    step: str = Field(min_length=1, max_length=40)
    params: dict[str, Scalar] = Field(default_factory=dict, max_length=20)

    @model_validator(mode="after")
    def _allowed(self) -> Step:
        if self.step not in STEPS:
            raise ValueError(f"unknown step {self.step[:40]!r}; allowed: {', '.join(STEPS)}")
        refused = sorted(k for k in self.params if k in SERVER_PARAMS)
        if refused:
            raise ValueError(f"{self.step} parameter(s) {', '.join(refused)} are set by the server "
                             "from the dataset's public metadata (bounds, norms, classes) or may "
                             "not be set at all (random_state would fix the noise)")
        try:
            STEPS[self.step].params.model_validate(self.params)
        except ValidationError as exc:
            raise ValueError(f"{self.step}: {validation_message(exc)}") from None
        return self

    def validated(self) -> _Params:
        """The step's parameters with their defaults, as its schema model."""
        return STEPS[self.step].params.model_validate(self.params)

    @property
    def kind(self) -> str:
        return STEPS[self.step].kind


class DiffPrivLibQuery(BaseModel):
    """A DiffPrivLib pipeline to train on the dataset.

    ``pipeline``: transformers (``StandardScaler``, ``PCA``) then at most one final estimator.
    ``feature_columns``: numeric or boolean columns with bounds in the metadata.
    ``target_columns``: one column for a classifier (declared categories, or boolean) or a
    regressor (bounded number); none for clustering or transformers only.
    ``test_size``: the share of the (resized) rows held out; ``test_train_split_seed`` fixes the
    split. ``score_epsilon``: releases the test accuracy of a classifier as a noisy count, charged
    on top of the steps; without it no score leaves the server.
    ``imputer_strategy``: what happens to missing values: ``drop`` the row, or replace them with a
    public value (``midpoint``, ``lower`` or ``upper`` bound). Data-derived strategies (``mean``,
    ``median``, ``most_frequent``) are refused: they are not differentially private.
    """

    model_config = ConfigDict(extra="forbid")

    pipeline: list[Step] = Field(min_length=1, max_length=6)
    feature_columns: list[str] = Field(min_length=1, max_length=100)
    target_columns: list[str] = Field(default_factory=list, max_length=1)
    test_size: float = Field(default=0.2, ge=0, le=0.5, allow_inf_nan=False)
    test_train_split_seed: StrictInt = Field(default=1, ge=0, le=2**32 - 1)
    imputer_strategy: str = "drop"
    score_epsilon: float | None = Field(default=None, gt=0, le=100, allow_inf_nan=False)

    @model_validator(mode="after")
    def _shape(self) -> DiffPrivLibQuery:
        if self.imputer_strategy not in ("drop", "midpoint", "lower", "upper"):
            raise ValueError("imputer_strategy must be drop, midpoint, lower or upper: data-derived "
                             "imputation (mean, median, most_frequent) is not differentially private")
        kinds = [s.kind for s in self.pipeline]
        if any(k != "transformer" for k in kinds[:-1]):
            raise ValueError("only transformers (StandardScaler, PCA) may come before the last step")
        if len(set(self.feature_columns)) != len(self.feature_columns):
            raise ValueError("feature_columns has duplicates")
        if set(self.target_columns) & set(self.feature_columns):
            raise ValueError("a target column cannot also be a feature")
        final = kinds[-1]
        if final in ("classifier", "regressor") and not self.target_columns:
            raise ValueError(f"a {final} needs one target column")
        if final not in ("classifier", "regressor") and self.target_columns:
            raise ValueError("target_columns only apply to a classifier or a regressor")
        if self.score_epsilon is not None and (final != "classifier" or self.test_size == 0):
            raise ValueError("score_epsilon releases a classifier's test accuracy: it needs a "
                             "classifier as last step and test_size > 0")
        return self

    @property
    def final_kind(self) -> str:
        return self.pipeline[-1].kind

    def epsilons(self) -> list[float]:
        """Each step's epsilon (DiffPrivLib's default where not given), in order."""
        return [s.validated().epsilon for s in self.pipeline]


def public_params(step: Step) -> dict[str, Any]:
    """The step's parameters with defaults, as plain JSON values."""
    return step.validated().model_dump()
