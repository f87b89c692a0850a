"""``examples/walkthrough.py`` runs start to end against a live demo server, and the notebook is the
same content."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "walkthrough.py"
NOTEBOOK = ROOT / "examples" / "walkthrough.ipynb"
CONVERTER = ROOT / "lomas_client" / "tools" / "script_to_notebook.py"


def _converter() -> Any:
    spec = importlib.util.spec_from_file_location("script_to_notebook", CONVERTER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_notebook_matches_script() -> None:
    expected = _converter().convert(SCRIPT.read_text(encoding="utf-8"))
    actual = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    assert actual == expected, ("examples/walkthrough.ipynb is stale; regenerate it with "
                                "python lomas_client/tools/script_to_notebook.py examples/walkthrough.py")
    assert all(not c.get("outputs") for c in actual["cells"] if c["cell_type"] == "code")


def _demo_dataset() -> tuple[Any, dict[str, Any]]:
    """The demo penguins table (CSV) and metadata (YAML) shipped under ``lomas_core/demo/``, or a
    stand-in with the same columns while they are missing."""
    import pandas as pd
    import yaml

    demo_dir = ROOT / "lomas_core" / "demo"
    csvs = sorted(demo_dir.glob("*.csv")) if demo_dir.is_dir() else []
    metadata: dict[str, Any] | None = None
    for path in sorted(demo_dir.glob("*.y*ml")) if csvs else []:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and isinstance(doc.get("metadata"), dict):
            doc = doc["metadata"]  # a dataset description wrapping the metadata
        if isinstance(doc, dict) and "columns" in doc:
            metadata = doc
            break
    if not csvs or metadata is None:
        return _stand_in()  # the CLI's demo files are not there (yet): same columns, made here
    return pd.read_csv(csvs[0]), metadata


def _stand_in() -> tuple[Any, dict[str, Any]]:
    """A penguins-like stand-in with the demo's columns and metadata."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(1)
    rows = 344
    bill = rng.uniform(32, 60, rows)
    bill[::23] = np.nan
    frame = pd.DataFrame({
        "species": rng.choice(["Adelie", "Chinstrap", "Gentoo"], rows),
        "island": rng.choice(["Biscoe", "Dream", "Torgersen"], rows),
        "bill_length_mm": bill, "bill_depth_mm": rng.uniform(13, 23, rows),
        "flipper_length_mm": rng.uniform(150, 250, rows), "body_mass_g": rng.uniform(2500, 6500, rows),
        "sex": rng.choice(np.array(["MALE", "FEMALE", None], dtype=object), rows)})
    metadata = {"max_ids": 1, "rows": rows, "row_privacy": True, "censor_dims": False, "columns": {
        "species": {"type": "string", "categories": ["Adelie", "Chinstrap", "Gentoo"]},
        "island": {"type": "string", "categories": ["Biscoe", "Dream", "Torgersen"]},
        "bill_length_mm": {"type": "float", "lower": 30.0, "upper": 65.0, "nullable": True},
        "bill_depth_mm": {"type": "float", "lower": 13.0, "upper": 23.0},
        "flipper_length_mm": {"type": "float", "lower": 150.0, "upper": 250.0},
        "body_mass_g": {"type": "float", "lower": 2500.0, "upper": 6500.0},
        "sex": {"type": "string", "categories": ["MALE", "FEMALE"], "nullable": True}}}
    return frame, metadata


def test_walkthrough_runs_against_a_demo_server(tmp_path: Path) -> None:
    harness_mod = pytest.importorskip("lomas_core.testing.harness")
    frame, metadata = _demo_dataset()
    harness = harness_mod.LomasHarness(tmp_path, engines={"smartnoise_sql": {}, "opendp": {},
                                                                 "diffprivlib": {}})
    harness.add_dataset("penguins", frame, metadata)
    token = harness.add_user("researcher", grant={"penguins": (10.0, 1e-4)})
    try:
        with harness.serve() as url:
            env = {**os.environ, "LOMAS_URL": url, "LOMAS_TOKEN": token,
                   "LOMAS_DATASET": "penguins"}
            run = subprocess.run([sys.executable, str(SCRIPT)], env=env, cwd=tmp_path,
                                 capture_output=True, text=True, timeout=240)
            assert run.returncode == 0, f"stdout:\n{run.stdout[-4000:]}\nstderr:\n{run.stderr[-4000:]}"
            assert "refused:" in run.stdout and "remaining is unchanged: True" in run.stdout
            spent = harness.store.get_grant("researcher", "penguins").spent
            assert spent.epsilon > 0
    finally:
        harness.close()
