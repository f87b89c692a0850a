"""The dataset cache through the core with a real adapter (http, on a loopback file server that
counts requests): served from memory, revalidated by version, reloaded when the source changes,
bounded by its cap (least recently used out), one load for concurrent first requests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from lomas_core.config import Config
from lomas_core.io import check_schema, read_table_bytes
from lomas_core.metadata import Metadata
from lomas_core.models import DatasetDescription
from lomas_core.plugins import load_plugins
from lomas_core.testing.engine_contract import CONTRACT_METADATA, contract_table
from lomas_core.testing.harness import LomasHarness

http_testing = pytest.importorskip("lomas_adapter_http.testing")
FileServer = http_testing.FileServer
table_bytes = http_testing.table_bytes

METADATA = Metadata.model_validate({**CONTRACT_METADATA, "rows": 2000})  # "big" has 2000 rows
QUERY = {"engine": "toy_faulty", "query": {"epsilon": 0.1}}


@pytest.fixture
def server() -> Iterator[Any]:
    with FileServer() as srv:
        yield srv


def _publish(server: Any, name: str, rows: int = 200, **behaviour: Any) -> str:
    server.put(f"/{name}.parquet", table_bytes(contract_table(rows), "parquet"), **behaviour)
    return f"/{name}.parquet"


#: The loopback file server is a non-public address; the http adapter must be told to allow it.
HTTP_LOOPBACK = {"allowed_hosts": ["127.0.0.1"], "allowed_networks": ["127.0.0.1/32"]}


def _harness(tmp_path: Path, server: Any, names: list[str], **cache: Any) -> LomasHarness:
    h = LomasHarness(tmp_path, engines={"toy_faulty": {}}, adapters={"http": HTTP_LOOPBACK},
                     cache={"max_bytes": 1 << 30, "revalidate_seconds": 3600, **cache})
    for name in names:
        h.add_dataset_description(DatasetDescription(
            name=name, adapter="http", options={"url": server.url(f"/{name}.parquet")},
            metadata=METADATA))
    return h


def _rows(client: Any, name: str) -> int:
    r = client.post(f"/v1/datasets/{name}/query", json=QUERY)
    assert r.status_code == 200, r.text
    return int(r.json()["result"]["value"])


def test_second_query_does_not_hit_the_source(tmp_path: Path, server: Any) -> None:
    path = _publish(server, "a")
    h = _harness(tmp_path, server, ["a"])
    token = h.add_user("alice", grant={"a": (10.0, 0.0)})
    with h.client(token) as c:
        assert [_rows(c, "a") for _ in range(3)] == [200, 200, 200]
        cache = h.app_state(c).cache
        assert (cache.loads, cache.hits) == (1, 2)
    assert server.count("GET", path) == 1
    assert server.count("HEAD", path) == 0  # within the revalidation interval: no request at all
    h.close()


def test_revalidation_asks_for_the_version_only(tmp_path: Path, server: Any) -> None:
    path = _publish(server, "a")
    h = _harness(tmp_path, server, ["a"], revalidate_seconds=0)
    token = h.add_user("alice", grant={"a": (10.0, 0.0)})
    with h.client(token) as c:
        assert [_rows(c, "a") for _ in range(3)] == [200, 200, 200]
    assert server.count("GET", path) == 1
    assert server.count("HEAD", path) == 2
    h.close()


def test_changed_source_is_picked_up(tmp_path: Path, server: Any) -> None:
    path = _publish(server, "a")
    h = _harness(tmp_path, server, ["a"], revalidate_seconds=0)
    token = h.add_user("alice", grant={"a": (10.0, 0.0)})
    with h.client(token) as c:
        assert _rows(c, "a") == 200
        _publish(server, "a", rows=150)
        assert _rows(c, "a") == 150
        assert _rows(c, "a") == 150
        assert h.app_state(c).cache.loads == 2
    assert server.count("GET", path) == 2
    h.close()


def test_change_waits_for_the_revalidation_interval(server: Any) -> None:
    """With a controlled clock: a change is seen once the interval has passed, not before."""
    _publish(server, "a")
    config = Config(adapters={"http": HTTP_LOOPBACK}, engines={})
    adapter = load_plugins(config, with_store=False).adapters["http"]
    now = [0.0]
    from lomas_core.cache import DatasetCache

    cache = DatasetCache(1 << 30, revalidate_seconds=30, clock=lambda: now[0])
    desc = DatasetDescription(name="a", adapter="http",
                              options={"url": server.url("/a.parquet")}, metadata=METADATA)
    assert cache.get(desc, adapter, METADATA).table.num_rows == 200
    _publish(server, "a", rows=120)
    now[0] = 29.0
    assert cache.get(desc, adapter, METADATA).table.num_rows == 200
    assert server.count("HEAD") == 0
    now[0] = 31.0
    assert cache.get(desc, adapter, METADATA).table.num_rows == 120
    assert (server.count("HEAD"), server.count("GET")) == (1, 2)
    now[0] = 62.0  # unchanged: one HEAD, no download
    assert cache.get(desc, adapter, METADATA).table.num_rows == 120
    assert (server.count("HEAD"), server.count("GET")) == (2, 2)
    adapter.close()


def test_withdrawn_source_is_not_served_from_memory(tmp_path: Path, server: Any) -> None:
    path = _publish(server, "a")
    h = _harness(tmp_path, server, ["a"], revalidate_seconds=0)
    token = h.add_user("alice", grant={"a": (10.0, 0.0)})
    with h.client(token) as c:
        assert _rows(c, "a") == 200
        del server.files[path]
        r = c.post("/v1/datasets/a/query", json=QUERY)
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert error["code"] == "dataset_unavailable"
        assert "'a'" in error["message"] and "nothing was charged" in error["message"]
    assert float(h.grant("alice", "a").spent.epsilon) == pytest.approx(0.1)
    h.close()


def _handle_bytes(rows: int) -> int:
    table = read_table_bytes("x", table_bytes(contract_table(rows), "parquet"), "parquet")
    return int(check_schema("x", table, METADATA).nbytes)


def test_eviction_respects_the_cap(tmp_path: Path, server: Any) -> None:
    one = _handle_bytes(200)
    paths = {name: _publish(server, name) for name in ("a", "b", "c")}
    _publish(server, "big", rows=2000)
    cap = int(one * 2.5)  # room for two of a, b, c; never for big
    h = _harness(tmp_path, server, ["a", "b", "c", "big"], max_bytes=cap)
    token = h.add_user("alice", grant={n: (10.0, 0.0) for n in ("a", "b", "c", "big")})
    with h.client(token) as c:
        cache = h.app_state(c).cache
        _rows(c, "a")
        _rows(c, "b")
        _rows(c, "a")  # a is now the most recently used
        _rows(c, "c")  # evicts b, the least recently used
        assert cache.cached_names() == ["a", "c"]
        assert cache.total_bytes <= cap and cache.evictions == 1
        _rows(c, "a")
        assert server.count("GET", paths["a"]) == 1
        _rows(c, "b")  # reloaded; evicts c
        assert server.count("GET", paths["b"]) == 2
        assert cache.cached_names() == ["a", "b"]
        assert _rows(c, "big") == 2000  # larger than the cap: served, not kept
        assert _rows(c, "big") == 2000
        assert server.count("GET", "/big.parquet") == 2
        assert "big" not in cache.cached_names() and cache.total_bytes <= cap
    h.close()


def test_concurrent_first_requests_load_once(tmp_path: Path, server: Any) -> None:
    # The body is held back for a moment so that all requests arrive while the first load runs.
    path = _publish(server, "a", delay=0.5)
    h = _harness(tmp_path, server, ["a"])
    tokens = [h.add_user(f"u{i}", grant={"a": (10.0, 0.0)}) for i in range(8)]
    barrier = threading.Barrier(len(tokens))

    with h.serve() as url:
        def query(token: str) -> int:
            with httpx.Client(base_url=url, timeout=30,
                              headers={"Authorization": f"Bearer {token}"}) as client:
                barrier.wait()
                return _rows(client, "a")

        with ThreadPoolExecutor(len(tokens)) as pool:
            assert list(pool.map(query, tokens)) == [200] * len(tokens)
    assert server.count("GET", path) == 1
    h.close()
