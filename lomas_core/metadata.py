"""Public dataset metadata, in the style of SmartNoise/Lomas YAML.

Metadata is public by definition: engines compute costs from it, the dummy dataset is generated from
it, and researchers can read it. Example::

    max_ids: 1
    rows: 344
    row_privacy: true
    censor_dims: false
    columns:
      species: {type: string, categories: [Adelie, Chinstrap, Gentoo]}
      bill_length_mm: {type: float, lower: 30.0, upper: 65.0, nullable: true}
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ColumnMetadata", "ColumnType", "Metadata"]

ColumnType = Literal["int", "float", "string", "boolean", "datetime"]


class ColumnMetadata(BaseModel):
    """One column: its type, bounds or categories, nullability, and whether it identifies a person."""

    model_config = ConfigDict(extra="allow")

    type: ColumnType
    lower: float | int | str | None = None
    upper: float | int | str | None = None
    categories: list[Any] | None = None
    nullable: bool = False
    private_id: bool = False

    @model_validator(mode="after")
    def _bounds_ordered(self) -> ColumnMetadata:
        if self.type in ("int", "float") and self.lower is not None and self.upper is not None:
            if float(self.lower) > float(self.upper):
                raise ValueError(f"lower ({self.lower}) is above upper ({self.upper})")
        if self.categories is not None and len(self.categories) == 0:
            raise ValueError("categories, when given, cannot be empty")
        return self

    @property
    def bounded(self) -> bool:
        return self.lower is not None and self.upper is not None


class Metadata(BaseModel):
    """Table-level privacy facts and the columns.

    ``max_ids`` is how many rows one individual may contribute (the ``d_in`` of every privacy map);
    ``rows`` is the public (or publicly bounded) number of rows, when known.
    """

    model_config = ConfigDict(extra="allow")

    max_ids: int = Field(default=1, ge=1)
    rows: int | None = Field(default=None, ge=0)
    row_privacy: bool = True
    censor_dims: bool = False
    columns: dict[str, ColumnMetadata]

    @model_validator(mode="after")
    def _has_columns(self) -> Metadata:
        if not self.columns:
            raise ValueError("metadata needs at least one column")
        return self

    def column(self, name: str) -> ColumnMetadata:
        """The column named ``name``; KeyError when the metadata does not list it."""
        return self.columns[name]
