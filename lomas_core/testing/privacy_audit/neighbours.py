"""Neighbouring datasets for the audit: D, and D' = D plus one extreme individual.

The added individual (the *canary*) contributes ``max_ids`` rows, the most the metadata allows,
and in every column the value that moves answers most:

* bounded numbers: the bound farther from the column's mean in D;
* declared categories: the category rarest in D (one absent from D when there is one, so that a
  group key exists in D' only);
* booleans: the rarer value; other strings: a value absent from D;
* a ``private_id`` column: an identifier absent from D (all canary rows share it).

The built-in audit dataset is the demo's synthetic penguins table with metadata that exercises
both key policies: ``species`` and ``sex`` have public keys, ``island`` does not (its groups are
released through thresholding). ``species`` and ``island`` each declare one category absent from
the data, which the canary brings: a public key released only when present, or a non-public key
released without a threshold, shows up as a structural difference.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from lomas_core.metadata import ColumnMetadata, Metadata

__all__ = ["CANARY_TEXT", "audit_dataset", "canary_row", "neighbours"]

#: The value given to free-text string columns (and string identifiers) of the canary.
CANARY_TEXT = "zz-audit-canary"


def _rarest(values: list[Any], choices: list[Any]) -> Any:
    counts = {c: 0 for c in choices}
    for v in values:
        if v in counts:
            counts[v] += 1
    return min(choices, key=lambda c: counts[c])  # ties: the first declared


def _extreme(name: str, col: ColumnMetadata, values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    if col.categories:
        cats = list(col.categories)
        if col.type == "int":
            cats = [int(c) for c in cats]
        elif col.type == "float":
            cats = [float(c) for c in cats]
        return _rarest(present, cats)
    if col.type == "boolean":
        return _rarest(present, [True, False])
    if col.type in ("int", "float"):
        nums = [float(v) for v in present]
        mean = sum(nums) / len(nums) if nums else 0.0
        lo = float(col.lower) if col.lower is not None else (min(nums) if nums else 0.0)
        hi = float(col.upper) if col.upper is not None else (max(nums) if nums else 0.0)
        pick = hi if abs(hi - mean) >= abs(lo - mean) else lo
        return int(pick) if col.type == "int" else pick
    if col.type == "datetime":
        return max(present) if present else None
    return CANARY_TEXT


def canary_row(metadata: Metadata, table: pa.Table) -> dict[str, Any]:
    """The values of the added individual (one row; D' repeats it ``max_ids`` times)."""
    row: dict[str, Any] = {}
    for name, col in metadata.columns.items():
        values = table.column(name).to_pylist() if name in table.column_names else []
        if col.private_id:
            present = {v for v in values if v is not None}
            if col.type == "int":
                row[name] = int(max(present, default=0)) + 1
            else:
                row[name] = CANARY_TEXT
                while row[name] in present:
                    row[name] += "-"
        else:
            row[name] = _extreme(name, col, values)
    return row


def neighbours(metadata: Metadata, table: pa.Table,
               canary: dict[str, Any] | None = None) -> tuple[pa.Table, pa.Table]:
    """(D, D'): ``table`` itself, and ``table`` with the canary's ``max_ids`` rows appended."""
    row = dict(canary) if canary is not None else canary_row(metadata, table)
    extra = {}
    for field in table.schema:
        value = row.get(field.name)
        extra[field.name] = pa.array([value] * metadata.max_ids, type=field.type)
    added = pa.table(extra, schema=table.schema)
    return table, pa.concat_tables([table, added])


def audit_dataset() -> tuple[Metadata, pa.Table]:
    """The built-in audit dataset (see the module docstring): metadata and table."""
    import pyarrow.csv as pacsv
    import yaml

    from lomas_core.demo import demo_file

    raw = yaml.safe_load(demo_file("penguins_metadata.yaml").read_text())
    raw["columns"]["species"]["categories"].append("Emperor")
    raw["columns"]["island"] = {"type": "string",
                                "categories": ["Biscoe", "Dream", "Torgersen", "Anvers"]}
    meta = Metadata.model_validate(raw)
    types = {name: pa.string() if col.type == "string" else pa.float64()
             for name, col in meta.columns.items()}
    table = pacsv.read_csv(demo_file("penguins.csv"),
                           convert_options=pacsv.ConvertOptions(column_types=types,
                                                                strings_can_be_null=True))
    return meta, table
