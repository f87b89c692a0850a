"""The README and docs stay true: their commands run, their links resolve, and the plugin example in
docs/plugins.md works as written."""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest

from lomas_core.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "docs" / "admin.md", ROOT / "docs" / "plugins.md"]


def _blocks(path: Path, *langs: str) -> list[str]:
    """Fenced code blocks whose language is one of ``langs`` ("" for no language)."""
    blocks: list[str] = []
    lang: str | None = None
    lines: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            if lang is None:
                lang, lines = line[3:].strip(), []
            else:
                if lang in langs:
                    blocks.append("\n".join(lines) + "\n")
                lang = None
        elif lang is not None:
            lines.append(line)
    return blocks


def _lomas_lines(path: Path) -> list[list[str]]:
    commands = []
    for block in _blocks(path, "bash", ""):
        for line in block.splitlines():
            line = line.split("#", 1)[0].split("[", 1)[0].strip()
            if line.startswith("lomas "):
                commands.append(shlex.split(line)[1:])
    return commands


@pytest.mark.parametrize("doc", [ROOT / "README.md", ROOT / "docs" / "admin.md"], ids=lambda p: p.name)
def test_documented_commands_parse(doc: Path) -> None:
    commands = _lomas_lines(doc)
    assert commands, f"no lomas commands found in {doc.name}"
    parser = build_parser()
    for args in commands:
        parsed = parser.parse_args(args)
        assert callable(parsed.func), args


def test_readme_admin_quick_start_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    demo = tmp_path / ".lomas-demo"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOMAS_CONFIG", raising=False)
    assert main(["demo", "--dir", str(demo)]) == 0
    block = next(b for b in _blocks(ROOT / "README.md", "bash") if "export LOMAS_CONFIG" in b)
    env_line = next(line for line in block.splitlines() if line.startswith("export LOMAS_CONFIG="))
    monkeypatch.setenv("LOMAS_CONFIG", env_line.split("=", 1)[1].split()[0])
    ran = 0
    for args in _lomas_lines(ROOT / "README.md"):
        if args[0] in ("plugins", "admin"):
            assert main(args) == 0, f"lomas {' '.join(args)} failed:\n{capsys.readouterr().err}"
            ran += 1
    assert ran >= 5


def test_local_links_and_scripts_exist() -> None:
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#:]+)\)", doc.read_text(encoding="utf-8")):
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"
    for script in ("install.sh", "demo.sh", "test.sh"):
        path = ROOT / "scripts" / script
        assert path.exists() and subprocess.run(["bash", "-n", str(path)]).returncode == 0
    run = (ROOT / ".ci" / "run").read_text()
    assert run.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in run


def _plugin_example() -> dict[str, str]:
    files = {}
    for block in _blocks(ROOT / "docs" / "plugins.md", "python", "toml"):
        first, _, rest = block.partition("\n")
        if first.startswith("# file: "):
            files[first.removeprefix("# file: ").strip()] = rest
    return files


def test_plugins_doc_example_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("opendp")
    from lomas_core.testing.harness import write_plugin_distribution

    files = _plugin_example()
    assert {"pyproject.toml", "lomas_engine_rowcount/engine.py", "tests/test_rowcount.py"} <= set(files)
    example = files["pyproject.toml"] + files["lomas_engine_rowcount/engine.py"]
    assert len(example.strip().splitlines()) < 60  # the complete minimal engine stays minimal
    project = tomllib.loads(files["pyproject.toml"])["project"]
    modules = {path: source for path, source in files.items() if path.startswith("lomas_engine_")}
    modules["lomas_engine_rowcount/__init__.py"] = ""
    site = write_plugin_distribution(tmp_path / "site", project["name"], project["entry-points"],
                                     modules, version=project["version"])
    namespace: dict[str, object] = {}
    exec(compile(files["tests/test_rowcount.py"], "test_rowcount.py", "exec"), namespace)

    import lomas_core.testing.harness as harness_module

    original = harness_module.LomasHarness

    class WithSite(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, plugin_paths=[site], **kwargs)  # type: ignore[arg-type]

    namespace["LomasHarness"] = WithSite
    namespace["test_rowcount_charges_and_answers"](tmp_path / "run")  # type: ignore[operator]


def test_readme_admin_quick_start_runs_as_pasted_in_a_shell(tmp_path: Path) -> None:
    """The block works in a fresh shell where the venv is not active (no `lomas` on PATH)."""
    import os
    import sys

    venv = Path(sys.executable).parent.parent
    if not (venv / "bin" / "activate").exists() or not (venv / "bin" / "lomas").exists():
        pytest.skip("not running from a venv with the lomas command")
    (tmp_path / ".venv").symlink_to(venv)
    subprocess.run([str(venv / "bin" / "lomas"), "demo", "--dir", ".lomas-demo"], cwd=tmp_path,
                   check=True, capture_output=True, env={**os.environ, "LOMAS_CONFIG": ""})
    block = next(b for b in _blocks(ROOT / "README.md", "bash") if "export LOMAS_CONFIG" in b)
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                           if Path(p).resolve() != (venv / "bin").resolve())
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "LOMAS_CONFIG")}
    run = subprocess.run(["bash", "-e", "-c", block], cwd=tmp_path, capture_output=True,
                         text=True, env={**env, "PATH": path}, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "command not found" not in run.stderr


def test_readme_explains_the_smartnoise_delta() -> None:
    """The README's grant gives room for its SmartNoise-SQL query, whose delta costs ~1.5x."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    grant = re.search(r"lomas admin grant bob penguins .*--delta (\S+)", readme)
    query = re.search(r"smartnoise_sql\.query\(.*delta=([\d.e-]+)\)", readme)
    assert grant and query
    assert float(grant.group(1)) >= 1.5 * float(query.group(1))
    assert "1.5x" in readme and "cost(" in readme


def test_client_install_instructions_do_not_point_at_pypi() -> None:
    """'pip install lomas-client' fetches another project; the docs say how to install ours."""
    for doc in (ROOT / "README.md", ROOT / "lomas_client" / "README.md"):
        text = doc.read_text(encoding="utf-8")
        commands = [line.split("#", 1)[0].strip() for block in _blocks(doc, "bash", "")
                    for line in block.splitlines()]
        assert not any(re.fullmatch(r"pip install '?lomas-client(\[\w+\])?'?", c) for c in commands)
        assert "pip install ./lomas_client" in text and "dist/lomas_client-" in text, doc.name
        assert "different project" in text, doc.name
    assert "pip wheel" in (ROOT / "scripts" / "install.sh").read_text()


def test_packaging_metadata_builds_without_deprecation_warnings() -> None:
    """A license table made setuptools print ~290 lines of warnings during every install."""
    for pyproject in [ROOT / "pyproject.toml", ROOT / "lomas_client" / "pyproject.toml",
                      *sorted(ROOT.glob("plugins/*/*/pyproject.toml"))]:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        assert isinstance(data["project"].get("license"), str), pyproject
        assert any(r.startswith("setuptools>=77") for r in data["build-system"]["requires"])


def test_install_script_reports_each_step_and_keeps_pip_output_in_a_log() -> None:
    script = (ROOT / "scripts" / "install.sh").read_text(encoding="utf-8")
    steps = re.findall(r'^\s*step "(\d)/(\d):', script, flags=re.M)
    assert [s[0] for s in steps] == ["1", "2", "3", "4"] and {s[1] for s in steps} == {"4"}
    assert "lomas-install.log" in script
