"""Fixtures of the deployment tests: helm v4 (fetched once, cached) and cached chart renders."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_render import CHARTS, NAMESPACE, RELEASE, HelmRun, Render, Rendered
from helm_tools import helm_binary  # noqa: F401 - fixture


@pytest.fixture(scope="session")
def helm(helm_binary: Path) -> HelmRun:  # noqa: F811 - the imported fixture
    """Run helm with arguments; returns the completed process (never raises on failure)."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(helm_binary), *args], capture_output=True, text=True, timeout=120,
                              check=False)

    return run


@pytest.fixture(scope="session")
def helm_template(helm: HelmRun, tmp_path_factory: pytest.TempPathFactory) -> Render:
    """``helm template`` of a chart with values (a dict, written to a file); renders are cached."""
    cache: dict[str, Rendered] = {}
    workdir = tmp_path_factory.mktemp("helm-values")

    def render(chart: str, values: dict[str, Any] | None = None, *extra: str) -> Rendered:
        key = yaml.safe_dump([chart, values or {}, list(extra)], sort_keys=True)
        if key not in cache:
            values_file = workdir / f"values-{len(cache)}.yaml"
            values_file.write_text(yaml.safe_dump(values or {}))
            done = helm("template", RELEASE, str(CHARTS / chart), "--namespace", NAMESPACE,
                        "--values", str(values_file), *extra)
            assert done.returncode == 0, f"helm template {chart} failed:\n{done.stderr}"
            cache[key] = Rendered([d for d in yaml.safe_load_all(done.stdout) if d])
        return cache[key]

    return render
