"""Public dataset metadata, in the style of SmartNoise/Lomas YAML.

Metadata is public by definition: engines compute costs from it, the dummy dataset is generated from
it, and researchers can read it.

Which group keys may be released is the data owner's decision, made here and nowhere else:

* a column with ``categories`` and ``public_keys: true`` has public keys: a grouped answer lists
  exactly its declared categories, in their declared order, absent ones included;
* any other grouping column is released only through thresholding (``censor_dims: true``, the
  default: rare groups are hidden and the query pays a delta for it); with ``censor_dims: false``
  grouping on it is refused.

Example::

    max_ids: 1
    rows: 344
    row_privacy: true
    censor_dims: true
    columns:
      species: {type: string, categories: [Adelie, Chinstrap, Gentoo], public_keys: true}
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
    #: The declared ``categories`` are public group keys (released even when absent from the data).
    public_keys: bool = False

    @model_validator(mode="after")
    def _bounds_ordered(self) -> ColumnMetadata:
        if self.type in ("int", "float") and self.lower is not None and self.upper is not None:
            if float(self.lower) > float(self.upper):
                raise ValueError(f"lower ({self.lower}) is above upper ({self.upper})")
        if self.categories is not None and len(self.categories) == 0:
            raise ValueError("categories, when given, cannot be empty")
        if self.public_keys and not self.categories:
            raise ValueError("public_keys needs the column's categories (the public key set)")
        if self.public_keys and self.private_id:
            raise ValueError("a private_id column cannot have public keys")
        return self

    @property
    def bounded(self) -> bool:
        return self.lower is not None and self.upper is not None


class Metadata(BaseModel):
    """Table-level privacy facts and the columns.

    ``max_ids`` is how many rows one individual may contribute (the ``d_in`` of every privacy map);
    the core enforces it when a dataset is loaded (see :mod:`lomas_core.prepare`).
    ``rows`` is the public (or publicly bounded) number of rows, when known. ``censor_dims``
    (default true) lets engines release non-public group keys by thresholding.
    """

    model_config = ConfigDict(extra="allow")

    max_ids: int = Field(default=1, ge=1)
    rows: int | None = Field(default=None, ge=0)
    row_privacy: bool = True
    censor_dims: bool = True
    columns: dict[str, ColumnMetadata]

    @model_validator(mode="after")
    def _has_columns(self) -> Metadata:
        if not self.columns:
            raise ValueError("metadata needs at least one column")
        return self

    def public_keys(self, name: str) -> list[Any] | None:
        """The public key set of column ``name`` (its categories), or None when not public."""
        col = self.columns.get(name)
        return list(col.categories or []) if col is not None and col.public_keys else None

    @property
    def private_id(self) -> str | None:
        """The column that identifies individuals, when the metadata names one."""
        return next((n for n, c in self.columns.items() if c.private_id), None)

    def column(self, name: str) -> ColumnMetadata:
        """The column named ``name``; KeyError when the metadata does not list it."""
        return self.columns[name]
