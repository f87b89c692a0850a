"""The ``smartnoise_sql`` query payload (pydantic), validated before anything else looks at it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["MAX_SQL_CHARS", "MECHANISMS", "STATISTICS", "SmartnoiseSQLQuery"]

#: Longest accepted SQL text. DP queries are short; the cap bounds the parser's work.
MAX_SQL_CHARS = 20_000
#: Statistics whose mechanism can be overridden (SmartNoise-SQL's ``Stat`` names).
STATISTICS = ("count", "sum_int", "sum_large_int", "sum_float", "sum_large_float", "threshold")
#: Mechanisms SmartNoise-SQL knows (its ``Mechanism`` names).
MECHANISMS = ("laplace", "geometric", "discrete_laplace", "gaussian")


class SmartnoiseSQLQuery(BaseModel):
    """One SQL statement over the dataset's table (``df`` or the dataset name) and its privacy.

    ``epsilon``/``delta`` are SmartNoise-SQL's per-statistic parameters: the charge is what the
    library's odometer says the whole query spends, which may exceed them (see the README).
    """

    model_config = ConfigDict(extra="forbid")

    sql: str = Field(min_length=1, max_length=MAX_SQL_CHARS)
    epsilon: float = Field(gt=0, allow_inf_nan=False)
    delta: float = Field(ge=0, lt=1)
    mechanisms: dict[str, str] | None = Field(default=None, max_length=len(STATISTICS))
    postprocess: bool = True

    @field_validator("mechanisms")
    @classmethod
    def _known_mechanisms(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if not value:
            return None
        for stat, mech in value.items():
            if stat not in STATISTICS:
                raise ValueError(f"unknown statistic {stat[:40]!r}; use one of {', '.join(STATISTICS)}")
            if mech not in MECHANISMS:
                raise ValueError(f"unknown mechanism {mech[:40]!r}; use one of {', '.join(MECHANISMS)}")
        return dict(sorted(value.items()))
