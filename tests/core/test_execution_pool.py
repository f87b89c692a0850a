"""The execution pool in process (TestClient) and the dataset files it maps.

Dataset versions are written once as Arrow IPC files that the server and the workers map; the
cache's rules govern the files (a replaced, evicted or invalidated version's file is removed);
a charged query runs in a worker once, and a replay never reaches a worker again.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from lomas_core.cache import DatasetCache
from lomas_core.config import Config, ExecutionConfig, load_config
from lomas_core.errors import ConfigError
from lomas_core.models import DatasetDescription
from lomas_core.plugins import load_plugins
from lomas_core.testing.harness import LomasHarness

META = {"max_ids": 1, "columns": {"x": {"type": "int", "lower": 0, "upper": 9}}}


def test_worker_count_defaults_to_cores_shared_by_http_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.delenv("LOMAS_HTTP_PROCESSES", raising=False)
    assert ExecutionConfig().worker_count() == 4
    monkeypatch.setenv("LOMAS_HTTP_PROCESSES", "2")
    assert ExecutionConfig().worker_count() == 2
    monkeypatch.setenv("LOMAS_HTTP_PROCESSES", "8")
    assert ExecutionConfig().worker_count() == 1
    assert ExecutionConfig(workers=0).worker_count() == 0


def test_threads_per_worker_divides_the_cores_among_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.delenv("LOMAS_HTTP_PROCESSES", raising=False)
    assert ExecutionConfig().thread_count() == 1  # 4 workers, one core each
    assert ExecutionConfig(workers=1).thread_count() == 4
    assert ExecutionConfig(workers=2).thread_count() == 2
    assert ExecutionConfig(workers=3).thread_count() == 1
    assert ExecutionConfig(workers=8).thread_count() == 1  # never 0
    assert ExecutionConfig(workers=1, threads_per_worker=3).thread_count() == 3  # the admin's
    monkeypatch.setenv("LOMAS_HTTP_PROCESSES", "2")  # each HTTP process has 2 of the 4 cores
    assert ExecutionConfig().thread_count() == 1
    assert ExecutionConfig(workers=1).thread_count() == 2


@pytest.mark.parametrize("value", [0, -1, 257, "two", 1.5])
def test_threads_per_worker_must_be_a_positive_count(value: object, tmp_path: Path) -> None:
    path = tmp_path / "lomas.yaml"
    path.write_text(f"execution: {{threads_per_worker: {value}}}\n")
    with pytest.raises(ConfigError, match="threads_per_worker"):
        load_config(path)
    assert Config.model_validate(
        {"execution": {"threads_per_worker": 2}}).execution.threads_per_worker == 2


def test_workers_receive_their_thread_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool divides this process's cores among its workers and each worker's engines read
    their share (lomas_core.api.worker_threads); an explicit threads_per_worker wins."""
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.delenv("LOMAS_HTTP_PROCESSES", raising=False)
    body = {"engine": "toy_faulty", "query": {"epsilon": 0.1, "action": "threads"}}
    for execution, expected in (({"workers": 2}, 2), ({"workers": 1, "threads_per_worker": 3}, 3)):
        h = LomasHarness(tmp_path / str(expected), engines={"toy_faulty": {}}, execution=execution)
        h.add_dataset("ds", pd.DataFrame({"x": range(10)}), META)
        token = h.add_user("alice", grant={"ds": (10.0, 0.0)})
        try:
            with h.client(token) as c:
                pool = h.app_state(c).pool
                assert pool is not None and pool.threads == expected
                seen = set()
                for _ in range(2 * pool.size):  # reach every worker
                    r = c.post("/v1/datasets/ds/query", json=body)
                    assert r.status_code == 200, r.text
                    seen.add(r.json()["result"]["value"])
                r = c.post("/v1/datasets/ds/query", json={**body, "dummy": {"rows": 10}})
                assert r.status_code == 200, r.text
                seen.add(r.json()["result"]["value"])
                assert seen == {expected}
        finally:
            h.close()


def test_workers_freeze_what_they_share_with_the_forkserver(tmp_path: Path) -> None:
    """A worker's garbage collector ignores the libraries and engine state it holds for life: a
    full collection then neither takes long inside a query nor copies the pages the workers share
    (benchmarks/bench_workers.py measures both)."""
    import gc

    h = LomasHarness(tmp_path, engines={"toy_faulty": {}}, execution={"workers": 1})
    h.add_dataset("ds", pd.DataFrame({"x": range(10)}), META)
    token = h.add_user("alice", grant={"ds": (10.0, 0.0)})
    try:
        with h.client(token) as c:
            r = c.post("/v1/datasets/ds/query",
                       json={"engine": "toy_faulty", "query": {"epsilon": 0.1, "action": "frozen"}})
            assert r.status_code == 200, r.text
            assert r.json()["result"]["value"] > 10_000  # numpy, pyarrow, lomas_core, the engine
        assert gc.get_freeze_count() == 0  # the server process itself is left alone
    finally:
        h.close()


def test_versions_are_files_governed_by_the_cache(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    config = Config(adapters={"local": {"allowed_dirs": [str(tmp_path)]}})
    adapter = load_plugins(config, with_store=False).adapters["local"]
    files = tmp_path / "files"
    cache = DatasetCache(1 << 30, revalidate_seconds=0, data_dir=files)
    from lomas_core.metadata import Metadata

    meta = Metadata.model_validate(META)
    descs = {}
    for name in ("a", "b"):
        pd.DataFrame({"x": range(5)}).to_parquet(data / f"{name}.parquet")
        descs[name] = DatasetDescription(name=name, adapter="local",
                                         options={"path": str(data / f"{name}.parquet")},
                                         metadata=meta)
    a = cache.get(descs["a"], adapter, meta)
    assert a.path is not None and Path(a.path).parent == files
    mapped = pa.ipc.open_file(pa.memory_map(a.path)).read_all()
    assert mapped.equals(a.table)
    first = a.path
    import os
    import time

    time.sleep(0.01)
    pd.DataFrame({"x": range(7)}).to_parquet(data / "a.parquet")  # a new version
    os.utime(data / "a.parquet", (time.time() + 5, time.time() + 5))
    a2 = cache.get(descs["a"], adapter, meta)
    assert a2.table.num_rows == 7 and a2.path != first
    assert not Path(first).exists()  # the old version's file went with it
    assert a.table.num_rows == 5  # ... while a query holding the old handle still reads it
    b = cache.get(descs["b"], adapter, meta)
    assert sorted(p.name for p in files.glob("*.arrow")) == sorted(
        Path(p).name for p in (a2.path, b.path))
    Path(b.path).unlink()  # e.g. another HTTP process evicted it
    assert Path(cache.ensure_file(b)).exists()
    cache.invalidate("b")
    assert not Path(b.path).exists()
    cache.clear()
    assert list(files.glob("*.arrow")) == []
    adapter.close()


def test_charged_query_runs_in_a_worker_once(tmp_path: Path) -> None:
    h = LomasHarness(tmp_path, engines={"toy_faulty": {}, "toy_count": {}},
                     execution={"workers": 1, "data_dir": str(tmp_path / "files")})
    h.add_dataset("ds", pd.DataFrame({"x": range(10)}), META)
    token = h.add_user("alice", grant={"ds": (10.0, 0.0)})
    try:
        with h.client(token) as c:
            pool = h.app_state(c).pool
            assert pool is not None and len(pool.pids()) == 1
            body = {"engine": "toy_faulty", "query": {"epsilon": 0.5}}
            r = c.post("/v1/datasets/ds/query", json=body, headers={"Idempotency-Key": "k"})
            assert r.status_code == 200 and r.json()["result"]["value"] == 10
            tasks = pool.tasks
            again = c.post("/v1/datasets/ds/query", json=body, headers={"Idempotency-Key": "k"})
            assert again.json() == r.json() and pool.tasks == tasks  # replayed, not re-run
            r = c.post("/v1/datasets/ds/query", json={**body, "query": {"epsilon": -1}})
            assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_query"
            r = c.post("/v1/datasets/ds/cost", json={"engine": "toy_faulty",
                                                     "query": {"epsilon": 0.25}})
            assert r.status_code == 200, r.text
            assert list((tmp_path / "files").glob("*.arrow"))
        assert float(h.grant("alice", "ds").spent.epsilon) == pytest.approx(0.5)
        assert list((tmp_path / "files").glob("*.arrow")) == []  # removed at shutdown
    finally:
        h.close()


def test_a_worker_that_died_idle_is_replaced_before_the_task(tmp_path: Path) -> None:
    """Nothing ran in it, so the task goes to a fresh worker: the query succeeds, charged once."""
    import os
    import signal
    import time

    h = LomasHarness(tmp_path, engines={"toy_faulty": {}}, execution={"workers": 1})
    h.add_dataset("ds", pd.DataFrame({"x": range(10)}), META)
    token = h.add_user("alice", grant={"ds": (10.0, 0.0)})
    try:
        with h.client(token) as c:
            pool = h.app_state(c).pool
            assert pool is not None
            body = {"engine": "toy_faulty", "query": {"epsilon": 0.5}}
            assert c.post("/v1/datasets/ds/query", json=body).status_code == 200
            (pid,) = pool.pids()
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while pid in pool.pids() and time.monotonic() < deadline:
                time.sleep(0.02)
            r = c.post("/v1/datasets/ds/query", json=body)
            assert r.status_code == 200, r.text
            assert pool.pids() and pid not in pool.pids()
        assert float(h.grant("alice", "ds").spent.epsilon) == pytest.approx(1.0)
    finally:
        h.close()


def test_the_forkserver_preloads_the_enabled_engines_heavy_modules() -> None:
    """Workers share the engines' libraries with the forkserver instead of importing their own
    copies (benchmarks/bench_workers.py measures the memory this saves)."""
    from lomas_core.execution import engine_preload

    config = Config(engines={"smartnoise_sql": {}, "opendp": {}})
    preload = engine_preload(config)
    assert "lomas_engine_smartnoise_sql.engine" in preload and "duckdb" in preload
    assert "lomas_engine_opendp.engine" in preload and "polars" in preload
    assert "sklearn" not in preload  # diffprivlib is not enabled
    assert len(preload) == len(set(preload))
