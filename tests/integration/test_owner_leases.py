"""kill -9 of one of two servers sharing a store, while it answers charged queries.

The surviving server resolves the dead server's pending records on its own (heartbeat) and when a
client retries with the same Idempotency-Key, without waiting for ``recovery_grace_seconds``
(600 s here): the retry gets its final answer (``charged_failure``, charge kept, never re-run),
and spent equals the sum of the archive. Both stores: MongoDB through the nx-27017 wire server
(owner documents with leases), SQLite (owner locks).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from lomas_core.testing.harness import LomasHarness
from lomas_testsupport.mongo import mongodb_database, mongodb_uri  # noqa: F401 - fixtures

META = {"max_ids": 1, "columns": {"x": {"type": "int", "lower": 0, "upper": 9}}}
#: Long enough that nothing below could be the grace period at work.
GRACE = 600
#: Generous bound for a loaded CI machine; the lease below is 3 s.
PATIENCE = 90


def _sleeping(seconds: float) -> dict[str, Any]:
    return {"engine": "toy_faulty", "query": {"epsilon": 0.25, "action": "sleep", "seconds": seconds}}


def _store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    if kind == "sqlite":
        return {"name": "sqlite", "options": {"path": str(tmp_path / "lomas.db"),
                                              "recovery_grace_seconds": GRACE}}
    pytest.importorskip("lomas_store_mongodb")
    uri = request.getfixturevalue("mongodb_uri")
    database = request.getfixturevalue("mongodb_database")
    return {"name": "mongodb", "options": {"uri": uri, "database": database,
                                           "recovery_grace_seconds": GRACE, "lease_seconds": 3}}


@pytest.mark.parametrize("kind", ["mongodb", "sqlite"])
def test_a_live_server_resolves_a_killed_servers_queries(tmp_path: Path, kind: str,
                                                         request: pytest.FixtureRequest) -> None:
    h = LomasHarness(tmp_path, engines={"toy_faulty": {}}, store=_store(kind, tmp_path, request),
                     limits={"query_timeout_seconds": 120})
    try:
        h.add_dataset("ds", pd.DataFrame({"x": range(10)}), META)
        token = h.add_user("alice", grant={"ds": (10.0, 0.0)})
        headers = {"Authorization": f"Bearer {token}"}
        with h.serve() as survivor, h.serve() as doomed:
            doomed_pid = h.server_pid
            assert doomed_pid is not None
            with httpx.Client(base_url=survivor, timeout=60, headers=headers) as c:
                # The survivor has charged too (its heartbeat runs) and has a query in flight.
                assert c.post("/v1/datasets/ds/query", json=_sleeping(0),
                              headers={"Idempotency-Key": "done"}).status_code == 200
            survivor_busy = threading.Thread(target=_post, args=(survivor, headers, "busy", 25))
            survivor_busy.start()

            threads = [threading.Thread(target=_post, args=(doomed, headers, key, 60))
                       for key in ("retried", "idle")]
            for t in threads:
                t.start()
            deadline = time.monotonic() + PATIENCE
            while time.monotonic() < deadline and _pending(h) < 3:
                time.sleep(0.05)
            assert _pending(h) == 3, [r.status for r in h.store.list_archive("alice")]
            os.kill(doomed_pid, signal.SIGKILL)
            for t in threads:
                t.join()

            with httpx.Client(base_url=survivor, timeout=60, headers=headers) as c:
                # Nobody asks about "idle": the survivor's heartbeat resolves it.
                deadline = time.monotonic() + PATIENCE
                while time.monotonic() < deadline and _status(h, "idle") == "pending":
                    time.sleep(0.2)
                assert _status(h, "idle") == "failed"
                # A same-key retry gets the final answer at once (the owner is known dead).
                r = c.post("/v1/datasets/ds/query", json=_sleeping(60),
                           headers={"Idempotency-Key": "retried"})
                assert r.status_code == 422, r.text
                assert r.json()["error"]["code"] == "charged_failure", r.text
                assert r.json()["error"]["details"]["charged"] is True
            survivor_busy.join()
            # The survivor's own query was never touched while it ran.
            assert _status(h, "busy") == "success", h.server_log()[-3000:]
        records = h.store.list_archive("alice")
        assert sorted(r.status for r in records) == ["failed", "failed", "success", "success"]
        charged = sum(r.cost.epsilon for r in records if r.status in ("success", "failed"))
        assert h.grant("alice", "ds").spent.epsilon == charged
    finally:
        h.close()


def _post(url: str, headers: dict[str, str], key: str, seconds: float) -> None:
    try:
        httpx.post(f"{url}/v1/datasets/ds/query", json=_sleeping(seconds), timeout=seconds + 60,
                   headers={**headers, "Idempotency-Key": key})
    except httpx.HTTPError:
        pass  # its server is killed under it


def _pending(h: LomasHarness) -> int:
    return len([r for r in h.store.list_archive("alice") if r.status == "pending"])


def _status(h: LomasHarness, key: str) -> str | None:
    found = [r.status for r in h.store.list_archive("alice") if r.idempotency_key == key]
    return found[0] if found else None
