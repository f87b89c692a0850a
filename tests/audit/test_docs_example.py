"""The audit section of docs/plugins.md works as written: the rowcount engine of the plugin example
passes its audit test, and ``lomas audit`` with the documented catalogue prints a passing table."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from lomas_core.cli import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def _files() -> dict[str, str]:
    files: dict[str, str] = {}
    lang: str | None = None
    lines: list[str] = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            if lang is None:
                lang, lines = line[3:].strip(), []
            else:
                if lines and lines[0].startswith("# file: "):
                    files[lines[0].removeprefix("# file: ").strip()] = "\n".join(lines[1:]) + "\n"
                lang = None
        elif lang is not None:
            lines.append(line)
    return files


@pytest.fixture
def rowcount_site(tmp_path: Path) -> Path:
    pytest.importorskip("opendp")
    from lomas_core.testing.harness import write_plugin_distribution

    files = _files()
    project = tomllib.loads(files["pyproject.toml"])["project"]
    modules = {p: s for p, s in files.items() if p.startswith("lomas_engine_rowcount/")}
    modules["lomas_engine_rowcount/__init__.py"] = ""
    return write_plugin_distribution(tmp_path / "site", project["name"], project["entry-points"],
                                     modules, version=project["version"])


def test_documented_audit_test_passes(rowcount_site: Path, tmp_path: Path) -> None:
    import lomas_core.testing.privacy_audit as audit_module

    namespace: dict[str, Any] = {}
    exec(compile(_files()["tests/test_rowcount_audit.py"], "test_rowcount_audit.py", "exec"),
         namespace)
    original = audit_module.PrivacyAudit

    class WithSite(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, plugin_paths=[rowcount_site], **kwargs)

    namespace["PrivacyAudit"] = WithSite
    namespace["test_rowcount_privacy_audit"](tmp_path / "run")


def test_documented_command_and_catalogue(rowcount_site: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    catalogue = tmp_path / "rowcount_queries.yaml"
    catalogue.write_text(_files()["rowcount_queries.yaml"])
    assert [q["name"] for q in yaml.safe_load(catalogue.read_text())]
    assert main(["audit", "rowcount", "--queries", str(catalogue), "--samples", "2000",
                 "--plugin-path", str(rowcount_site)]) == 0
    out = capsys.readouterr().out
    assert "verdict: PASS" in out and "pass (refused)" in out
