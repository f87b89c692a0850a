"""The import rule: plugins import lomas only through its public facade, ``lomas_core.api``.

Scans the runtime package of every plugin distribution under ``plugins/`` (its tests may also use
``lomas_core.testing``; a plugin's own ``testing.py`` test-support module may too, but never
pytest-based suites).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {"lomas_core.api"}
TEST_SUPPORT = {"lomas_core.testing.tables"}


def _runtime_modules() -> list[Path]:
    return sorted(path for pkg in ROOT.glob("plugins/*/*/lomas_*") if pkg.is_dir()
                  for path in pkg.rglob("*.py"))


def _core_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "lomas_core":
                found.extend(f"lomas_core.{alias.name}" for alias in node.names)
            elif node.module.startswith("lomas_core."):
                found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(a.name for a in node.names if a.name.split(".")[0] == "lomas_core")
    return found


def test_there_are_plugins_to_scan() -> None:
    assert len(_runtime_modules()) > 20


@pytest.mark.parametrize("path", _runtime_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_plugin_imports_only_the_facade(path: Path) -> None:
    allowed = ALLOWED | (TEST_SUPPORT if path.name == "testing.py" else set())
    leaks = [module for module in _core_imports(path) if module not in allowed]
    assert not leaks, f"{path.relative_to(ROOT)} imports {leaks}; import from lomas_core.api"


def test_the_facade_exports_what_it_imports() -> None:
    import lomas_core.api as api

    missing = [name for name in api.__all__ if not hasattr(api, name)]
    assert not missing


def test_plugin_test_servers_do_not_import_pytest() -> None:
    code = ("import sys\n"
            "for name in ('lomas_adapter_http.testing', 'lomas_adapter_s3.testing'):\n"
            "    try:\n"
            "        __import__(name)\n"
            "    except ImportError:\n"
            "        pass\n"
            "assert 'pytest' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)
