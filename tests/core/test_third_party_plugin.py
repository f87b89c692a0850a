"""Third-party plugins of every kind, pip-installed from throw-away distributions built here.

One distribution provides an engine, an adapter, a store and an observer; each is enabled with one
line of config and works through a real server. Other distributions try what the seam must refuse:
claiming an installed name (the hijack), naming something that is not a plugin class, declaring a
second name, failing to import.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lomas_core.config import load_config
from lomas_core.errors import ConfigError, PluginError
from lomas_core.plugins import load_plugins
from lomas_core.testing.harness import LomasHarness

DIST = "lomas-tp-plugins"

PYPROJECT = """
[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "0.3.1"
dependencies = ["lomas-core"]

{entry_points}

[tool.setuptools]
packages = ["{package}"]
"""

ENTRY_POINTS = """
[project.entry-points."lomas.engines"]
tpcount = "lomas_tp_plugins.engine:TpCountEngine"
tpbroken = "lomas_tp_plugins.broken:Nothing"

[project.entry-points."lomas.adapters"]
tpmem = "lomas_tp_plugins.adapter:MemoryAdapter"

[project.entry-points."lomas.stores"]
tpstore = "lomas_tp_plugins.store:TpStore"

[project.entry-points."lomas.plugins"]
tplog = "lomas_tp_plugins.observer:FileLog"
"""

ENGINE = '''
"""A noisy count: Laplace noise as the difference of two exponentials (no constants)."""
import random

from pydantic import BaseModel, Field

from lomas_core.api import Budget, Engine, results


class Query(BaseModel):
    epsilon: float = Field(gt=0)


class TpCountEngine(Engine):
    Query = Query

    def cost(self, query, dataset):
        return Budget.of(query.epsilon)

    def run(self, query, data, dataset):
        rng = random.SystemRandom()
        scale = dataset.metadata.max_ids / query.epsilon
        noise = rng.expovariate(1 / scale) - rng.expovariate(1 / scale)
        return results.value(data.table.num_rows + noise)
'''

ADAPTER = '''
"""Datasets generated in memory: ``options: {rows: 40}`` makes a column x of rows % 10."""
from pydantic import BaseModel, ConfigDict, Field

from lomas_core.api import Adapter, InvalidRequest, Loaded


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_rows: int = Field(default=1000, ge=1)


class MemoryAdapter(Adapter):
    Options = Options

    def check_options(self, options):
        rows = options.get("rows")
        if not isinstance(rows, int) or not 0 < rows <= self.options.max_rows:
            raise InvalidRequest(f"tpmem: rows must be 1..{self.options.max_rows}")

    def version(self, options):
        return str(options["rows"])

    def load(self, dataset, options):
        import pyarrow as pa

        return Loaded(pa.table({"x": [i % 10 for i in range(options["rows"])]}),
                      str(options["rows"]))
'''

STORE = '''
"""A store with its own options that keeps its state in the built-in SQLite implementation."""
from pydantic import BaseModel, ConfigDict

from lomas_core.stores.sqlite import SQLiteStore


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: str


class TpStore(SQLiteStore):
    Options = Options

    @classmethod
    def create(cls, options, context):
        return cls(context.config.resolve_path(options.file), create=context.create_store)
'''

OBSERVER = '''
"""Writes one line per start-up and per completed query to ``options.log``."""
from pydantic import BaseModel, ConfigDict

from lomas_core.api import Observer, hookimpl


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    log: str


class FileLog(Observer):
    Options = Options

    def _write(self, line):
        with open(self.options.log, "a") as handle:
            handle.write(line + "\\n")

    @hookimpl
    def lomas_startup(self, context):
        self._write("startup")

    @hookimpl
    def lomas_query_completed(self, record):
        self._write(f"completed {record.status} {record.id}")
'''

HIJACK_ENTRY_POINTS = """
[project.entry-points."lomas.engines"]
opendp = "lomas_tp_hijack:Hijacker"
tpnotengine = "lomas_tp_hijack:NotAnEngine"
tpnamed = "lomas_tp_hijack:Named"
"""

HIJACK = '''
from lomas_core.api import Budget, Engine


class Hijacker(Engine):
    def cost(self, query, dataset):
        return Budget.of(0)

    def run(self, query, data, dataset):
        return {"type": "value", "value": 0}


class NotAnEngine:
    pass


class Named(Hijacker):
    name = "someone_else"
'''


def _pip_install(src: Path, target: Path) -> None:
    """``pip install --no-deps --no-build-isolation --target`` (the test venv stays untouched)."""
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(src)],
                   check=True, capture_output=True)


def _distribution(root: Path, name: str, package: str, entry_points: str,
                  modules: dict[str, str]) -> Path:
    src = root / name
    pkg = src / package
    pkg.mkdir(parents=True)
    (src / "pyproject.toml").write_text(PYPROJECT.format(name=name, package=package,
                                                         entry_points=entry_points))
    for rel, text in modules.items():
        (pkg / rel).write_text(textwrap.dedent(text))
    return src


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A target directory holding the pip-installed third-party distribution."""
    root = tmp_path_factory.mktemp("tp")
    src = _distribution(root, DIST, "lomas_tp_plugins", ENTRY_POINTS, {
        "__init__.py": "", "engine.py": ENGINE, "adapter.py": ADAPTER, "store.py": STORE,
        "observer.py": OBSERVER, "broken.py": 'raise RuntimeError("tptest boom")\n'})
    target = root / "site"
    _pip_install(src, target)
    yield target


@pytest.fixture(scope="module")
def hijack_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hijack")
    src = _distribution(root, "lomas-tp-hijack", "lomas_tp_hijack", HIJACK_ENTRY_POINTS,
                        {"__init__.py": HIJACK})
    target = root / "site"
    _pip_install(src, target)
    return target


def test_engine_adapter_store_and_observer_from_one_pip_install(site: Path, tmp_path: Path) -> None:
    log = tmp_path / "hooks.log"
    h = LomasHarness(tmp_path / "ok", plugin_paths=[site],
                     engines={"tpcount": {}},
                     adapters={"tpmem": {"max_rows": 100}},
                     store={"name": "tpstore", "options": {"file": "tp.db"}},
                     plugins={"tplog": {"log": str(log)}})
    h.add_dataset_description({"name": "ds", "adapter": "tpmem", "options": {"rows": 40},
                               "metadata": {"max_ids": 1, "rows": 40, "columns": {
                                   "x": {"type": "int", "lower": 0, "upper": 9}}}})
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    try:
        with h.serve() as url:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
                r = c.post("/v1/datasets/ds/query",
                           json={"engine": "tpcount", "query": {"epsilon": 0.5}})
                assert r.status_code == 200, r.text
                body = r.json()
                assert body["result"]["type"] == "value"
                assert body["remaining"] == {"epsilon": 0.5, "delta": 0.0}
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {h.admin_token}"}) as a:
                plugins = a.get("/v1/admin/plugins").json()["plugins"]
        loaded = {(p["kind"], p["name"]): p for p in plugins if p["distribution"] == DIST}
        assert {k for k, p in loaded.items() if p["enabled"]} == {
            ("engine", "tpcount"), ("adapter", "tpmem"), ("store", "tpstore"), ("observer", "tplog")}
        assert loaded[("engine", "tpcount")]["version"] == "0.3.1"
        assert log.read_text().splitlines() == ["startup", f"completed success {body['query_id']}"]
        assert (h.tmp_path / "tp.db").exists()  # the store's own option, resolved by the store
    finally:
        h.close()


def test_one_yaml_line_enables_each_kind(site: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(site))
    config = tmp_path / "lomas.yaml"
    config.write_text(textwrap.dedent(f"""\
        store: {{name: sqlite, options: {{path: lomas.db}}}}
        engines: {{tpcount: {{}}}}
        adapters: {{tpmem: {{}}}}
        plugins: {{tplog: {{log: {tmp_path / 'log.txt'}}}}}
        """))
    loaded = load_plugins(load_config(config), with_store=False)
    try:
        assert [type(e).__name__ for e in loaded.engines.values()] == ["TpCountEngine"]
        assert loaded.engines["tpcount"].name == "tpcount"
        assert loaded.adapters["tpmem"].name == "tpmem" and loaded.adapters["tpmem"].options.max_rows == 1000
        assert loaded.observers["tplog"].name == "tplog"
        assert loaded.pm.is_registered(loaded.observers["tplog"])
    finally:
        loaded.close()


def _start(tmp_path: Path, paths: list[Path], **sections: object) -> None:
    h = LomasHarness(tmp_path, plugin_paths=paths, **sections)  # type: ignore[arg-type]
    try:
        with h.client():
            pass
    finally:
        h.close()


def test_a_plugin_claiming_an_installed_name_is_refused(hijack_site: Path, tmp_path: Path) -> None:
    with pytest.raises(PluginError) as info:
        _start(tmp_path, [hijack_site], engines={"opendp": {}})
    message = str(info.value)
    assert "engine 'opendp' is claimed by 2 distributions" in message
    assert "lomas-engine-opendp" in message and "lomas-tp-hijack" in message
    assert "uninstall all but one" in message


def test_not_an_engine_and_a_second_name_are_refused(hijack_site: Path, tmp_path: Path) -> None:
    with pytest.raises(PluginError, match=r"engine 'tpnotengine' .* is not a Engine"):
        _start(tmp_path / "a", [hijack_site], engines={"tpnotengine": {}})
    with pytest.raises(PluginError, match=r"declares the name 'someone_else'; the entry point's "
                                          r"name is the only one"):
        _start(tmp_path / "b", [hijack_site], engines={"tpnamed": {}})


def test_options_are_validated_by_the_core(site: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"adapters\.tpmem: max_rows: "):
        _start(tmp_path, [site], adapters={"tpmem": {"max_rows": 0}})
    with pytest.raises(ConfigError, match=r"plugins\.tplog: log: Field required"):
        _start(tmp_path / "b", [site], plugins={"tplog": {}})


def test_unknown_engine_stops_startup(tmp_path: Path) -> None:
    h = LomasHarness(tmp_path, engines={"foo": {}})
    with pytest.raises(PluginError, match=r"engine 'foo' is not available; installed: "):
        with h.client():
            pass
    h.close()


def test_broken_plugin_stops_startup(site: Path, tmp_path: Path) -> None:
    h = LomasHarness(tmp_path, engines={"tpbroken": {}}, plugin_paths=[site])
    with pytest.raises(RuntimeError) as info:
        with h.serve():
            pass
    message = str(info.value)
    assert f"engine plugin 'tpbroken' (from {DIST}) failed to import: RuntimeError: tptest boom" in message
    h.close()
