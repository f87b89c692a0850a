"""Generate the synthetic demo table ``penguins.csv`` (fixed seed, so it is reproducible).

The rows are drawn from simple per-species normal distributions and clipped to the metadata's
bounds; a few values are left empty (``bill_length_mm`` and ``sex`` are nullable). Regenerate with::

    python -m lomas_core.demo.generate lomas_core/demo/penguins.csv
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

__all__ = ["COLUMNS", "SEED", "generate_rows", "write_csv"]

SEED = 20240601
ROWS = 344
COLUMNS = ("species", "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm",
           "body_mass_g", "sex")

# species -> (share, islands with weights, mean/sd of bill length, bill depth, flipper, mass)
_SPECIES: dict[str, dict[str, Any]] = {
    "Adelie": {"share": 0.44, "islands": {"Biscoe": 0.3, "Dream": 0.37, "Torgersen": 0.33},
               "bill_length": (38.8, 2.7), "bill_depth": (18.3, 1.2),
               "flipper": (190.0, 6.5), "mass": (3700.0, 460.0)},
    "Chinstrap": {"share": 0.20, "islands": {"Dream": 1.0},
                  "bill_length": (48.8, 3.3), "bill_depth": (18.4, 1.1),
                  "flipper": (196.0, 7.1), "mass": (3730.0, 385.0)},
    "Gentoo": {"share": 0.36, "islands": {"Biscoe": 1.0},
               "bill_length": (47.5, 3.1), "bill_depth": (15.0, 1.0),
               "flipper": (217.0, 6.5), "mass": (5075.0, 500.0)},
}
_BOUNDS = {"bill_length_mm": (30.0, 65.0), "bill_depth_mm": (13.0, 23.0),
           "flipper_length_mm": (150.0, 250.0), "body_mass_g": (2500.0, 6500.0)}
_MISSING_BILL = 2
_MISSING_SEX = 11


def _clip(value: float, column: str) -> float:
    low, high = _BOUNDS[column]
    return min(max(value, low), high)


def generate_rows(seed: int = SEED, rows: int = ROWS) -> list[dict[str, Any]]:
    """The demo rows as dicts (``None`` for missing values)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    names = list(_SPECIES)
    shares = np.array([_SPECIES[s]["share"] for s in names])
    out: list[dict[str, Any]] = []
    for _ in range(rows):
        species = names[int(rng.choice(len(names), p=shares / shares.sum()))]
        spec = _SPECIES[species]
        islands = list(spec["islands"])
        island = islands[int(rng.choice(len(islands), p=list(spec["islands"].values())))]
        male = bool(rng.random() < 0.5)
        bump = 1.0 if male else -1.0
        mass = rng.normal(*spec["mass"]) + bump * 250.0
        out.append({
            "species": species,
            "island": island,
            "bill_length_mm": round(_clip(rng.normal(*spec["bill_length"]) + bump, "bill_length_mm"), 1),
            "bill_depth_mm": round(_clip(rng.normal(*spec["bill_depth"]) + bump * 0.5, "bill_depth_mm"), 1),
            "flipper_length_mm": float(round(_clip(rng.normal(*spec["flipper"]) + bump * 2,
                                                   "flipper_length_mm"))),
            "body_mass_g": float(round(_clip(mass, "body_mass_g") / 25.0) * 25),
            "sex": "MALE" if male else "FEMALE",
        })
    for i in rng.choice(rows, size=_MISSING_BILL, replace=False):
        out[int(i)]["bill_length_mm"] = None
    for i in rng.choice(rows, size=_MISSING_SEX, replace=False):
        out[int(i)]["sex"] = None
    return out


def write_csv(path: str | Path, seed: int = SEED, rows: int = ROWS) -> Path:
    """Write the demo table as CSV (empty cells for missing values); returns the path."""
    target = Path(path)
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in generate_rows(seed, rows):
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return target


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    write_csv(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("penguins.csv"))
