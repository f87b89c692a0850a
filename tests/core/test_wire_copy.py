"""The OpenDP wire format is one file: the client's, copied byte for byte into the engine.

The client must not depend on the server, so the engine holds a copy; this test fails when the
copy drifts. Fix: ``cp lomas_client/src/lomas_client/opendp_wire.py
plugins/engines/opendp/lomas_engine_opendp/wire.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "lomas_client" / "src" / "lomas_client" / "opendp_wire.py"
COPY = ROOT / "plugins" / "engines" / "opendp" / "lomas_engine_opendp" / "wire.py"


def test_engine_wire_is_a_copy_of_the_client_wire() -> None:
    assert COPY.read_bytes() == SOURCE.read_bytes(), (
        f"{COPY.relative_to(ROOT)} differs from {SOURCE.relative_to(ROOT)}; copy the client's file")


def test_the_wire_module_imports_no_lomas_package() -> None:
    tree = ast.parse(SOURCE.read_text())
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in imported if m.startswith("lomas")], imported
