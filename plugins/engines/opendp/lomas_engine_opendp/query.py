"""The ``opendp`` query payload (pydantic), validated before anything else looks at it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["OutputMeasure", "OpenDPQuery"]

OutputMeasure = Literal["max_divergence", "zero_concentrated_divergence", "smoothed_max_divergence"]

_PLAN_ONLY = ("epsilon", "rho", "delta", "global_scale", "threshold")


class OpenDPQuery(BaseModel):
    """Exactly one of ``pipeline`` (OpenDP JSON) or ``plan`` (polars JSON plan).

    Pipeline fields: ``column`` names the dataset column fed to the pipeline (required; the
    pipeline's input domain must equal the server's for that column).

    Plan fields: ``output_measure`` and the privacy loss to calibrate to: ``epsilon`` (pure DP,
    optionally with ``delta`` for groups whose keys are not public) or ``rho`` (zCDP). Instead of a
    loss the client may fix ``global_scale`` (and ``threshold``) and pay what the map says.

    ``fixed_delta`` converts zCDP / smoothed outputs to (epsilon, delta); required for them.
    """

    model_config = ConfigDict(extra="forbid")

    pipeline: str | None = Field(default=None, min_length=2)
    plan: str | None = Field(default=None, min_length=2)
    plan_format: Literal["polars-json"] = "polars-json"
    fixed_delta: float | None = Field(default=None, ge=0, lt=1)
    column: str | None = None
    output_measure: OutputMeasure = "max_divergence"
    epsilon: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    rho: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    delta: float | None = Field(default=None, ge=0, lt=1)
    global_scale: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    threshold: int | None = Field(default=None, ge=0, le=2**32 - 1)

    @model_validator(mode="after")
    def _one_form(self) -> OpenDPQuery:
        if (self.pipeline is None) == (self.plan is None):
            raise ValueError("give exactly one of 'pipeline' or 'plan'")
        if self.pipeline is not None:
            extra = [k for k in _PLAN_ONLY if getattr(self, k) is not None]
            if extra:
                raise ValueError(f"{', '.join(extra)} only apply to plans; a pipeline carries its "
                                 "own noise scale")
            return self
        if self.column is not None:
            raise ValueError("'column' only applies to pipelines")
        if self.global_scale is None:
            if self.output_measure == "max_divergence" and self.epsilon is None:
                raise ValueError("a max_divergence plan needs 'epsilon' (or 'global_scale')")
            if self.output_measure == "zero_concentrated_divergence" and self.rho is None:
                raise ValueError("a zero_concentrated_divergence plan needs 'rho' (or 'global_scale')")
        if self.output_measure == "max_divergence" and self.rho is not None:
            raise ValueError("'rho' goes with output_measure zero_concentrated_divergence")
        if self.output_measure == "zero_concentrated_divergence" and self.epsilon is not None:
            raise ValueError("'epsilon' goes with output_measure max_divergence")
        return self
