"""A cost a worker returned is remembered by exactly what the worker was sent.

A repeated query is charged the same cost without a cost task; anything else in the task (the
engine, the query, the dataset's name, metadata or dialect) is another key; refusals are never
kept; the memo is bounded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from lomas_core.budget import Budget
from lomas_core.server.cost_memo import CostMemo
from lomas_core.testing.harness import LomasHarness

META = {"max_ids": 1, "columns": {"x": {"type": "int", "lower": 0, "upper": 9}}}
INFO = {"name": "ds", "metadata": {"max_ids": 1, "columns": {"x": {"type": "int"}}},
        "dialect": None}


def _task(**changes: Any) -> dict[str, Any]:
    msg = {"op": "cost", "engine": "e", "query": {"sql": "SELECT 1", "epsilon": 1.0},
           "info": INFO}
    return {**msg, **changes}


def test_the_key_is_every_input_of_the_task_and_only_those() -> None:
    key = CostMemo.key(_task())
    assert key is not None
    reordered = _task(query={"epsilon": 1.0, "sql": "SELECT 1"})
    assert CostMemo.key(reordered) == key  # the same JSON object
    assert CostMemo.key({**_task(), "op": "cost"}) == key
    others = [
        _task(engine="f"),
        _task(query={"sql": "SELECT 1", "epsilon": 1.5}),
        _task(query={"sql": "SELECT 2", "epsilon": 1.0}),
        _task(info={**INFO, "name": "other"}),
        _task(info={**INFO, "dialect": "postgresql"}),
        _task(info={**INFO, "metadata": {"max_ids": 2, "columns": {"x": {"type": "int"}}}}),
    ]
    keys = {CostMemo.key(m) for m in others}
    assert len(keys) == len(others) and key not in keys
    assert CostMemo.key(_task(query={"x": object()})) is None


def test_bounded_least_recently_used_first_out() -> None:
    memo = CostMemo(size=2)
    a, b, c = (CostMemo.key(_task(query={"n": i})) for i in range(3))
    memo.put(a, Budget.of(1))
    memo.put(b, Budget.of(2))
    assert memo.get(a) == Budget.of(1)  # a is now the most recent
    memo.put(c, Budget.of(3))
    assert len(memo) == 2 and memo.get(b) is None and memo.get(a) == Budget.of(1)
    off = CostMemo(size=0)
    off.put(a, Budget.of(1))
    assert off.get(a) is None and off.get(None) is None


def test_a_repeated_query_is_charged_without_a_cost_task(tmp_path: Path) -> None:
    h = LomasHarness(tmp_path, engines={"toy_faulty": {}}, execution={"workers": 1})
    h.add_dataset("ds", pd.DataFrame({"x": range(10)}), META)
    token = h.add_user("alice", grant={"ds": (10.0, 0.0)})
    try:
        with h.client(token) as c:
            pool = h.app_state(c).pool
            assert pool is not None
            body = {"engine": "toy_faulty", "query": {"epsilon": 0.5}}
            assert c.post("/v1/datasets/ds/query", json=body).status_code == 200
            tasks = pool.tasks
            for _ in range(2):
                r = c.post("/v1/datasets/ds/query", json=body)
                assert r.status_code == 200 and r.json()["epsilon"] == 0.5
            assert pool.tasks == tasks + 2  # the two runs only
            cost = c.post("/v1/datasets/ds/cost", json=body)
            assert cost.status_code == 200 and cost.json()["epsilon"] == 0.5
            assert pool.tasks == tasks + 2
            other = {"engine": "toy_faulty", "query": {"epsilon": 0.25}}
            assert c.post("/v1/datasets/ds/query", json=other).status_code == 200
            assert pool.tasks == tasks + 4  # a new cost task, then its run
            refused = {"engine": "toy_faulty", "query": {"epsilon": 0.5, "action": "path_refusal"}}
            for n in (1, 2):  # a refusal is asked again every time
                r = c.post("/v1/datasets/ds/query", json=refused)
                assert r.status_code == 422 and pool.tasks == tasks + 4 + n
        assert float(h.grant("alice", "ds").spent.epsilon) == pytest.approx(1.75)
    finally:
        h.close()


def test_with_a_known_cost_every_outcome_is_settled_as_before(tmp_path: Path) -> None:
    """With a remembered cost (no cost task), a failed run keeps its charge, a charge over budget
    charges nothing and runs nothing, a replay is answered from the archive."""
    h = LomasHarness(tmp_path, engines={"toy_faulty": {}}, execution={"workers": 1})
    h.add_dataset("ds", pd.DataFrame({"x": range(10)}), META)
    token = h.add_user("alice", grant={"ds": (2.0, 0.0)})
    try:
        with h.client(token) as c:
            pool = h.app_state(c).pool
            assert pool is not None
            crash = {"engine": "toy_faulty", "query": {"epsilon": 0.5, "action": "raise"}}
            for _ in range(2):
                r = c.post("/v1/datasets/ds/query", json=crash)
                assert r.status_code == 422 and r.json()["error"]["code"] == "query_failed"
            ok = {"engine": "toy_faulty", "query": {"epsilon": 0.5}}
            first = c.post("/v1/datasets/ds/query", json=ok, headers={"Idempotency-Key": "a"})
            assert first.status_code == 200
            tasks = pool.tasks
            again = c.post("/v1/datasets/ds/query", json=ok, headers={"Idempotency-Key": "a"})
            assert again.json() == first.json() and pool.tasks == tasks  # replayed
            r = c.post("/v1/datasets/ds/query", json=ok, headers={"Idempotency-Key": "b"})
            assert r.status_code == 200 and r.json()["remaining"]["epsilon"] == 0.0
            r = c.post("/v1/datasets/ds/query", json=ok)
            assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_budget"
            assert pool.tasks == tasks + 1  # one run; no cost task, no run over budget
            statuses = [q["status"] for q in c.get("/v1/datasets/ds/queries").json()["queries"]]
            assert statuses == ["failed", "failed", "success", "success"]
        assert float(h.grant("alice", "ds").spent.epsilon) == pytest.approx(2.0)
    finally:
        h.close()
