"""The server image: built by the same scripts/install.sh as the README's set-up (no Docker engine
here, so the Dockerfile's structure is checked; the install path itself is what the suite runs)."""

from __future__ import annotations

import re
import shlex

import pytest
from chart_render import ROOT

DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"


def _stages() -> dict[str, list[str]]:
    """Instructions of each build stage (continuation lines joined), by stage name."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    stages: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            words = line.split()
            current = words[3] if len(words) > 3 and words[2].upper() == "AS" else words[1]
            stages[current] = []
        if current is not None:
            stages[current].append(line)
    return stages


def _default_plugins() -> list[str]:
    match = re.search(r'^ARG PLUGINS="([^"]*)"', DOCKERFILE.read_text(), re.MULTILINE)
    assert match, "ARG PLUGINS with a default is missing"
    return match.group(1).split()


def test_builder_runs_the_shared_install_script() -> None:
    builder = " ".join(_stages()["builder"])
    run = re.search(r"RUN (LOMAS_\S+ .*?bash scripts/install\.sh /opt/lomas)", builder)
    assert run, "the builder stage must install with scripts/install.sh"
    words = shlex.split(run.group(1))
    assert {"LOMAS_EDITABLE=0", "LOMAS_EXTRAS=0", "LOMAS_CLIENT=0", "LOMAS_PLUGINS=$PLUGINS"} <= set(words)
    install = (ROOT / "scripts" / "install.sh").read_text()
    for variable in ("LOMAS_EDITABLE", "LOMAS_EXTRAS", "LOMAS_CLIENT", "LOMAS_PLUGINS"):
        assert variable in install, f"scripts/install.sh no longer reads {variable}"


def test_default_plugins_exist() -> None:
    plugins = _default_plugins()
    assert {"stores/mongodb", "engines/opendp"} <= set(plugins)
    missing = [p for p in plugins if not (ROOT / "plugins" / p / "pyproject.toml").is_file()]
    assert not missing, f"ARG PLUGINS names plugin directories that do not exist: {missing}"


@pytest.mark.parametrize("stage", ["server", "client"])
def test_runtime_stages_are_slim_and_non_root(stage: str) -> None:
    stages = _stages()
    lines = stages[stage]
    assert lines[0].split()[1] in ("${PYTHON_IMAGE}", "python:3.11-slim")
    users = [line.split()[1] for line in lines if line.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root"), f"{stage}: runs as root"
    assert any(line.upper().startswith("HEALTHCHECK ") for line in lines), f"{stage}: no HEALTHCHECK"
    text = " ".join(lines)
    assert "build-essential" not in text and "gcc" not in text, f"{stage}: build tools in the final image"
    assert "COPY --from=" in text


def test_server_image_serves_by_default_with_a_health_check() -> None:
    stages = _stages()
    assert list(stages)[-1] == "server", "the server must be the default (last) stage"
    text = " ".join(stages["server"])
    assert "COPY --from=builder /opt/lomas /opt/lomas" in text
    assert 'ENTRYPOINT ["lomas"]' in text and '"serve"' in text
    assert "http://127.0.0.1:8000/health" in text


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv"} <= set(ignored)
