"""A test harness that runs a real lomas server for plugin and integration tests.

Example (a plugin author's test)::

    from lomas_core.testing.harness import LomasHarness

    def test_my_engine(tmp_path):
        h = LomasHarness(tmp_path, engines={"myengine": {}})
        h.add_dataset("ds", pandas_frame, {"columns": {"x": {"type": "int", "lower": 0, "upper": 9}}})
        token = h.add_user("alice", grant={"ds": (1.0, 1e-5)})
        with h.client(token) as c:                      # in-process (FastAPI TestClient)
            r = c.post("/v1/datasets/ds/query", json={"engine": "myengine", "query": {...}})
        with h.serve() as url:                          # a real uvicorn process on 127.0.0.1
            httpx.get(f"{url}/health")
        h.close()

The pytest plugin offers the same as the ``lomas_harness`` factory fixture. Plugins that are not
installed can be tested from source with :func:`write_plugin_distribution` and ``plugin_paths``.
Engines named ``toy_*`` (:data:`TOY_ENGINES`) are trivial engines for tests of the core itself.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lomas_core.budget import Budget
from lomas_core.config import Config
from lomas_core.engine import DatasetInfo, Engine
from lomas_core.errors import InvalidQuery
from lomas_core.metadata import Metadata
from lomas_core.models import DatasetDescription, User
from lomas_core.tokens import hash_token, new_token

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from lomas_core.data import DataHandle
    from lomas_core.models import Grant
    from lomas_core.server.state import ServerState
    from lomas_core.store import BudgetStore

__all__ = ["TOY_ENGINES", "LomasHarness", "ToyCountEngine", "ToyFaultyEngine",
           "write_plugin_distribution"]


# -- toy engines (test-only; not differentially private in any serious sense) ---------------------
class _ToyCountQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epsilon: float = Field(gt=0, le=100)
    delta: float = Field(default=0.0, ge=0, le=1)


class ToyCountEngine(Engine):
    """A Laplace-noised row count. Test-only."""

    Query = _ToyCountQuery

    def cost(self, query: Any, dataset: DatasetInfo) -> Budget:
        return Budget.of(query.epsilon, query.delta)

    def run(self, query: Any, data: DataHandle, dataset: DatasetInfo) -> Any:
        import numpy as np

        from lomas_core.results import value

        scale = dataset.metadata.max_ids / query.epsilon
        return value(float(data.table.num_rows + np.random.default_rng().laplace(0.0, scale)))


class _ToyFaultyQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epsilon: float = Field(gt=0, le=100)
    action: Literal["ok", "raise", "sleep", "slow_cost", "unserializable", "path_refusal",
                    "allocate", "loop", "abort", "threads", "frozen"] = "ok"
    seconds: float = Field(default=0.0, ge=0, le=60)
    #: For ``allocate``: how much memory to fill.
    megabytes: int = Field(default=0, ge=0, le=65536)


class ToyFaultyEngine(Engine):
    """Misbehaves on request (raises with a 'private' message, sleeps, returns junk). Test-only.

    ``allocate`` fills ``megabytes`` of memory, ``loop`` spins on the CPU for ever and ``abort``
    kills its process (``os.abort``): only ever use those with the execution pool on. ``threads``
    answers with the threads its process's engines may use (0: the libraries' defaults), ``frozen``
    with the objects its process's garbage collector ignores (``gc.get_freeze_count()``).

    ``runs`` counts calls of :meth:`run` per (dataset, dummy) in this process.
    """

    Query = _ToyFaultyQuery
    runs: dict[tuple[str, bool], int] = {}
    SECRET_TEXT = "private-value-31337"

    def cost(self, query: Any, dataset: DatasetInfo) -> Budget:
        if query.action == "slow_cost":
            time.sleep(query.seconds)
        if query.action == "path_refusal":  # a library message that quotes where it is installed
            raise InvalidQuery(f"cannot use {Path(__file__).resolve()}: refused")
        return Budget.of(query.epsilon)

    def run(self, query: Any, data: DataHandle, dataset: DatasetInfo) -> Any:
        key = (data.dataset, data.dummy)
        ToyFaultyEngine.runs[key] = ToyFaultyEngine.runs.get(key, 0) + 1
        if query.action == "raise":
            raise RuntimeError(f"engine crashed near {self.SECRET_TEXT}")
        if query.action == "sleep":
            time.sleep(query.seconds)
        if query.action == "allocate":
            block = bytearray(query.megabytes * 1024 * 1024)
            return {"type": "value", "value": len(block)}
        if query.action == "loop":
            n = 0
            while True:
                n += 1
        if query.action == "abort":
            os.abort()
        if query.action == "threads":
            from lomas_core.execution.threads import worker_threads

            return {"type": "value", "value": worker_threads() or 0}
        if query.action == "frozen":
            import gc

            return {"type": "value", "value": gc.get_freeze_count()}
        if query.action == "unserializable":
            return {"type": "value", "value": object()}
        return {"type": "value", "value": data.table.num_rows}


TOY_ENGINES: dict[str, type[Engine]] = {"toy_count": ToyCountEngine, "toy_faulty": ToyFaultyEngine}


# -- plugin distributions from source --------------------------------------------------------------
def write_plugin_distribution(root: Path, name: str, entry_points: Mapping[str, Mapping[str, str]],
                              modules: Mapping[str, str] | None = None,
                              version: str = "0.0.1") -> Path:
    """Write a minimal installed-looking distribution (``*.dist-info`` + modules) under ``root``.

    Put ``root`` on ``sys.path`` (or pass it as ``plugin_paths``) and its entry points are found
    exactly like those of a pip-installed plugin.

    Args:
        root: a directory (created) that plays the role of site-packages.
        name: the distribution name, e.g. ``lomas-engine-demo``.
        entry_points: ``{"lomas.engines": {"demo": "lomas_engine_demo.engine:DemoEngine"}}``.
        modules: relative file path -> source, e.g. ``{"lomas_engine_demo/plugin.py": "..."}``.
    """
    root.mkdir(parents=True, exist_ok=True)
    dist = root / f"{name.replace('-', '_')}-{version}.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = []
    for group, items in entry_points.items():
        lines.append(f"[{group}]")
        lines.extend(f"{ep} = {target}" for ep, target in items.items())
        lines.append("")
    (dist / "entry_points.txt").write_text("\n".join(lines))
    for rel, source in (modules or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return root


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _to_arrow(frame: Any) -> Any:
    import pyarrow as pa

    if isinstance(frame, pa.Table):
        return frame
    if hasattr(frame, "to_arrow"):  # polars
        return frame.to_arrow()
    return pa.Table.from_pandas(frame, preserve_index=False)


class LomasHarness:
    """A lomas deployment in a temporary directory: config, store, datasets, users, servers.

    Args:
        tmp_path: a scratch directory (pytest's ``tmp_path``).
        engines: the config's ``engines`` section (``toy_*`` names are provided by the harness).
        adapters: the ``adapters`` section; default ``{"local": {"allowed_dirs": [tmp_path]}}``.
        store: ``{"name", "options"}``; default an SQLite file in ``tmp_path``.
        limits: the ``limits`` section.
        plugin_paths: directories holding plugin distributions from :func:`write_plugin_distribution`.
        config_overrides: any other top-level config sections (``cache``, ``secrets``, ...).
    """

    def __init__(self, tmp_path: Path, engines: Mapping[str, Any] | None = None,
                 adapters: Mapping[str, Any] | None = None, store: Mapping[str, Any] | None = None,
                 limits: Mapping[str, Any] | None = None, *,
                 plugin_paths: list[Path] | None = None, **config_overrides: Any) -> None:
        self.tmp_path = Path(tmp_path)
        self.tmp_path.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.tmp_path / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.plugin_paths = [Path(p) for p in plugin_paths or []]
        engines = dict(engines or {})
        if any(name in TOY_ENGINES for name in engines):
            self.plugin_paths.append(write_plugin_distribution(
                self.tmp_path / "toy_plugins", "lomas-testing-toys",
                {"lomas.engines": {name: f"{__name__}:{cls.__name__}"
                                   for name, cls in TOY_ENGINES.items()}}))
        self.admin_token = new_token()
        self._secret_env = f"LOMAS_HARNESS_ADMIN_{secrets.token_hex(6).upper()}"
        os.environ[self._secret_env] = self.admin_token
        secrets_section = {"harness_admin": {"env": self._secret_env},
                           **config_overrides.pop("secrets", {})}
        # In-process tests run engines in threads unless a test asks for the pool (``execution``):
        # starting worker processes for each of hundreds of short tests would dominate the suite.
        # $LOMAS_HARNESS_WORKERS runs a suite with the pool instead.
        workers = os.environ.get("LOMAS_HARNESS_WORKERS", "0")
        config_overrides.setdefault("execution", {"workers": int(workers)})
        self.raw_config: dict[str, Any] = {
            "engines": engines,
            "adapters": dict(adapters) if adapters is not None
            else {"local": {"allowed_dirs": [str(self.tmp_path)]}},
            "store": dict(store) if store is not None
            else {"name": "sqlite", "options": {"path": str(self.tmp_path / "lomas.db")}},
            "limits": dict(limits or {}),
            "secrets": secrets_section,
            "bootstrap_admin": {"user": "admin", "token": "harness_admin"},
            "base_dir": str(self.tmp_path),
            **config_overrides,
        }
        self._store: BudgetStore | None = None
        #: Process id of the server started last by :meth:`serve`.
        self.server_pid: int | None = None
        self._added_paths: list[str] = []

    # -- configuration and state -----------------------------------------------------------------
    @property
    def config(self) -> Config:
        """The validated configuration."""
        return Config.model_validate(self.raw_config)

    def _activate_plugin_paths(self) -> None:
        import importlib

        for path in self.plugin_paths:
            if str(path) not in sys.path:
                sys.path.insert(0, str(path))
                self._added_paths.append(str(path))
        importlib.invalidate_caches()

    @property
    def store(self) -> BudgetStore:
        """A store client on the harness's backing store (separate from the servers' own)."""
        if self._store is None:
            from lomas_core.plugins import make_store

            # The harness creates its store explicitly (servers refuse a missing one).
            self._activate_plugin_paths()  # a store may come from a plugin path too
            self._store = make_store(self.config, create=True)
        return self._store

    def add_dataset_description(self, description: DatasetDescription | Mapping[str, Any]) -> None:
        """Register a dataset with any adapter."""
        desc = (description if isinstance(description, DatasetDescription)
                else DatasetDescription.model_validate(dict(description)))
        self.store.put_dataset(desc, replace=True)

    def add_dataset(self, name: str, frame: Any, metadata: Metadata | Mapping[str, Any],
                    *, description: str = "", adapter: str = "local") -> Path:
        """Write ``frame`` (pandas, polars or pyarrow) as Parquet and register it with ``adapter``
        (``local``, or a file-based push-down source such as ``duckdb``)."""
        import pyarrow.parquet as pq

        path = self.data_dir / f"{name}.parquet"
        pq.write_table(_to_arrow(frame), path)
        meta = metadata if isinstance(metadata, Metadata) else Metadata.model_validate(dict(metadata))
        self.add_dataset_description(DatasetDescription(
            name=name, adapter=adapter, options={"path": str(path)}, metadata=meta,
            description=description))
        return path

    def add_user(self, name: str, grant: Mapping[str, tuple[float, float]] | None = None,
                 *, is_admin: bool = False) -> str:
        """Create a user with grants ``{dataset: (epsilon, delta)}``; returns a bearer token."""
        self.store.add_user(User(name=name, is_admin=is_admin))
        token = new_token()
        self.store.add_token(name, hash_token(token))
        for dataset, (epsilon, delta) in (grant or {}).items():
            self.store.grant(name, dataset, Budget.of(epsilon, delta))
        return token

    # -- servers ---------------------------------------------------------------------------------
    def client(self, token: str | None = None, **kwargs: Any) -> TestClient:
        """An in-process client on a fresh app; use it as a context manager so start-up runs."""
        import warnings

        with warnings.catch_warnings():  # starlette nags about httpx; the harness pins nothing
            warnings.simplefilter("ignore")
            from fastapi.testclient import TestClient

        from lomas_core.server.app import create_app

        self._activate_plugin_paths()
        _ = self.store  # created explicitly before any server opens it
        headers = dict(kwargs.pop("headers", {}) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return TestClient(create_app(self.config), headers=headers, **kwargs)

    @staticmethod
    def app_state(client: TestClient) -> ServerState:
        """The running app's :class:`~lomas_core.server.state.ServerState` (cache, plugins, limits)."""
        state: ServerState = client.app.state.lomas  # type: ignore[attr-defined]
        return state

    def grant(self, user: str, dataset: str) -> Grant:
        """The grant of ``user`` on ``dataset`` (AssertionError when there is none)."""
        grant = self.store.get_grant(user, dataset)
        assert grant is not None, f"{user} has no grant on {dataset}"
        return grant

    def write_config(self, port: int = 0) -> Path:
        """Write the YAML config a server process reads; returns its path."""
        import yaml

        raw = dict(self.raw_config)
        raw["server"] = {**raw.get("server", {}), "host": "127.0.0.1", "port": port}
        path = self.tmp_path / "lomas.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return path

    @contextmanager
    def serve(self, timeout: float = 30.0) -> Iterator[str]:
        """Run a real uvicorn server process on a free loopback port; yields its base URL.

        Raises:
            RuntimeError: the server exited or did not become healthy; carries its output.
        """
        import httpx

        _ = self.store  # created explicitly before the server process opens it
        port = _free_port()
        config_path = self.write_config(port)
        env = {**os.environ, "LOMAS_CONFIG": str(config_path), self._secret_env: self.admin_token}
        extra = os.pathsep.join(str(p) for p in self.plugin_paths)
        if extra:
            env["PYTHONPATH"] = extra + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        log_path = self.tmp_path / f"server-{port}.log"
        cmd = [sys.executable, "-m", "uvicorn", "--factory",
               "lomas_core.server.app:create_app_from_env", "--host", "127.0.0.1",
               "--port", str(port), "--lifespan", "on", "--log-level", "warning"]
        url = f"http://127.0.0.1:{port}"
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        self.server_pid = proc.pid
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"lomas server exited with code {proc.returncode}:\n"
                                       + log_path.read_text(errors="replace"))
                try:
                    if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("lomas server did not become healthy in time:\n"
                                       + log_path.read_text(errors="replace"))
                time.sleep(0.05)
            yield url
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def server_log(self) -> str:
        """Output of the server processes started so far (for assertions and debugging)."""
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.tmp_path.glob("server-*.log")))

    def close(self) -> None:
        """Close the harness's store client and undo its ``sys.path`` changes."""
        if self._store is not None:
            self._store.close()
            self._store = None
        for path in self._added_paths:
            if path in sys.path:
                sys.path.remove(path)
        self._added_paths.clear()
        os.environ.pop(self._secret_env, None)

    def __enter__(self) -> LomasHarness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
