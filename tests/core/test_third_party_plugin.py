"""A third-party engine, pip-installed from its own distribution, works through a real server."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from lomas_core.errors import PluginError
from lomas_core.testing.harness import LomasHarness

DIST = "lomas-engine-tptest"

PYPROJECT = f"""
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{DIST}"
version = "0.3.1"
dependencies = ["lomas-core"]

[project.entry-points."lomas.engines"]
tpcount = "lomas_engine_tptest.plugin"
tpbroken = "lomas_engine_tptest.broken"

[tool.setuptools]
packages = ["lomas_engine_tptest"]
"""

PLUGIN = '''
"""Entry point of the tpcount engine: cheap to import."""
import os

from lomas_core import hookimpl


@hookimpl
def lomas_make_engine(name, options, context):
    if name != "tpcount":
        return None
    from lomas_engine_tptest.engine import TpCountEngine
    return TpCountEngine()


def _log(line):
    path = os.environ.get("TPTEST_LOG")
    if path:
        with open(path, "a") as handle:
            handle.write(line + "\\n")


@hookimpl
def lomas_startup(context):
    _log("startup")


@hookimpl
def lomas_query_completed(record):
    _log(f"completed {record.status} {record.id}")
'''

ENGINE = '''
"""A noisy count: Laplace noise as the difference of two exponentials (no constants)."""
import random

from pydantic import BaseModel, Field

from lomas_core.budget import Budget
from lomas_core.engine import Engine
from lomas_core.results import value


class Query(BaseModel):
    epsilon: float = Field(gt=0)


class TpCountEngine(Engine):
    name = "tpcount"
    Query = Query

    def cost(self, query, dataset):
        return Budget.of(query.epsilon)

    def run(self, query, data, dataset):
        rng = random.SystemRandom()
        scale = dataset.metadata.max_ids / query.epsilon
        noise = rng.expovariate(1 / scale) - rng.expovariate(1 / scale)
        return value(data.table.num_rows + noise)
'''

BROKEN = '''
raise RuntimeError("tptest boom")
'''

META = {"max_ids": 1, "rows": 40, "columns": {"x": {"type": "int", "lower": 0, "upper": 9}}}


@pytest.fixture
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Install the distribution for one test (one test only: xdist workers must not race on it)."""
    src = tmp_path_factory.mktemp("tptest")
    (src / "pyproject.toml").write_text(PYPROJECT)
    pkg = src / "lomas_engine_tptest"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "plugin.py").write_text(textwrap.dedent(PLUGIN))
    (pkg / "engine.py").write_text(textwrap.dedent(ENGINE))
    (pkg / "broken.py").write_text(BROKEN)
    pip = [sys.executable, "-m", "pip"]
    install = [*pip, "install", "--quiet", "--no-deps", str(src)]
    # Prefer the venv's setuptools; old setuptools without `wheel` cannot build in place, so fall
    # back to pip's isolated build (fetches setuptools from the package index).
    done = subprocess.run([*install, "--no-build-isolation"], check=False, capture_output=True)
    if done.returncode != 0:
        subprocess.run(install, check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run([*pip, "uninstall", "--quiet", "--yes", DIST], check=False, capture_output=True)


def test_installed_engine_works_and_broken_plugin_stops_startup(
        installed: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "hooks.log"
    monkeypatch.setenv("TPTEST_LOG", str(log))
    h = LomasHarness(tmp_path / "ok", engines={"tpcount": {}})
    h.add_dataset("ds", pd.DataFrame({"x": [i % 10 for i in range(40)]}), META)
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    try:
        with h.serve() as url:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
                r = c.post("/v1/datasets/ds/query", json={"engine": "tpcount", "query": {"epsilon": 0.5}})
                assert r.status_code == 200, r.text
                body = r.json()
                assert body["result"]["type"] == "value" and isinstance(body["result"]["value"], float)
                assert body["remaining"] == {"epsilon": 0.5, "delta": 0.0}
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {h.admin_token}"}) as a:
                plugins = a.get("/v1/admin/plugins").json()["plugins"]
        [entry] = [p for p in plugins if p["name"] == "tpcount"]
        assert entry["distribution"] == DIST and entry["version"] == "0.3.1" and entry["loaded"]
        assert log.read_text().splitlines() == ["startup", f"completed success {body['query_id']}"]
    finally:
        h.close()
    _check_broken_plugin_stops_startup(tmp_path / "broken")


def test_unknown_engine_stops_startup(tmp_path: Path) -> None:
    h = LomasHarness(tmp_path, engines={"foo": {}})
    with pytest.raises(PluginError, match=r"engine 'foo' is not available; installed: "):
        with h.client():
            pass
    h.close()


def _check_broken_plugin_stops_startup(tmp_path: Path) -> None:
    h = LomasHarness(tmp_path, engines={"tpbroken": {}})
    with pytest.raises(RuntimeError) as info:
        with h.serve():
            pass
    message = str(info.value)
    assert f"engine plugin 'tpbroken' (from {DIST}) failed to import: RuntimeError: tptest boom" in message
    h.close()
