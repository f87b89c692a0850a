"""Through the server: what the core enforces at load reaches every engine; paths never leak."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lomas_core.server.errors import scrub_paths
from lomas_core.testing.harness import LomasHarness

META = {"max_ids": 1, "rows": 20, "row_privacy": False, "columns": {
    "pid": {"type": "int", "private_id": True},
    "g": {"type": "string", "categories": ["a", "b"]}}}


@pytest.fixture
def h(tmp_path: Path):
    harness = LomasHarness(tmp_path, engines={"toy_count": {}, "toy_faulty": {}})
    yield harness
    harness.close()


def test_one_person_with_many_rows_counts_max_ids_times(h: LomasHarness) -> None:
    frame = pd.DataFrame({"pid": [1, 2, 3] + [42] * 10, "g": ["a"] * 13})
    h.add_dataset("ds", frame, META)
    token = h.add_user("alice", grant={"ds": (1000.0, 0.0)})
    with h.client(token) as c:
        r = c.post("/v1/datasets/ds/query", json={"engine": "toy_count", "query": {"epsilon": 100}})
        assert r.status_code == 200, r.text
        # 4 people, max_ids 1: the count is 4 (noise scale 0.01), not 13.
        assert abs(r.json()["result"]["value"] - 4) < 1


def test_values_outside_categories_never_reach_an_engine(h: LomasHarness) -> None:
    frame = pd.DataFrame({"pid": [1, 2, 3], "g": ["a", "Secret Name", "b"]})
    h.add_dataset("ds", frame, META)
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    with h.client(token) as c:
        r = c.post("/v1/datasets/ds/query", json={"engine": "toy_count", "query": {"epsilon": 1}})
        assert r.status_code == 200, r.text
        state = h.app_state(c)
        description = state.store.get_dataset("ds")
        handle = state.cache.get(description, state.adapter(description), state.metadata(description))
    assert handle.table.column("g").to_pylist() == ["a", None, "b"]


def test_server_paths_are_scrubbed_for_researchers(h: LomasHarness) -> None:
    h.add_dataset("ds", pd.DataFrame({"pid": [1], "g": ["a"]}), META)
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    with h.client(token) as c:
        r = c.post("/v1/datasets/ds/cost",
                   json={"engine": "toy_faulty", "query": {"epsilon": 1, "action": "path_refusal"}})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_query"
    message = r.json()["error"]["message"]
    assert "<server path>" in message and "harness.py" not in message and "/lomas_core" not in message


@pytest.mark.parametrize("text", [
    "cannot open /usr/lib/python3/site-packages/opendp/lib/libopendp.so",
    "read file:///etc/passwd failed", r"open C:\Users\bob\data.csv failed",
    "at /root/.venv/lib/python3.11/x.py:12"])
def test_scrub_paths_removes_file_locations(text: str) -> None:
    scrubbed = scrub_paths(text)
    assert "<server path>" in scrubbed and "/lib" not in scrubbed and "Users" not in scrubbed


@pytest.mark.parametrize("text", ["no such route: GET /v1/datasets/x/query", "a ratio of 1/2",
                                  "epsilon must be at most 10"])
def test_scrub_paths_keeps_ordinary_text(text: str) -> None:
    assert scrub_paths(text) == text
