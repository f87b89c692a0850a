"""Refund exactly when no data was read; charged failures say so with their own code.

Cases from the ledger issue: an admin narrowing ``adapters.local.allowed_dirs`` (a configuration
error: never charged, warned by /cost and dummies too, detected at start-up and by
``lomas admin dataset check``), and data that was read but cannot be used (a missing column, a
text value in a float column, an empty or truncated file): charged, ``charged_failure`` (422),
never a retryable 503.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lomas_core.adapter import Adapter, Loaded
from lomas_core.budget import Budget
from lomas_core.errors import InvalidRequest
from lomas_core.models import ArchiveRecord
from lomas_core.reads import DataReads, note_read
from lomas_core.testing.harness import LomasHarness

META = {"max_ids": 1, "rows": 30, "columns": {
    "x": {"type": "float", "lower": 0, "upper": 9},
    "g": {"type": "string", "categories": ["a", "b", "c"]}}}
FRAME = pd.DataFrame({"x": [float(i % 10) for i in range(30)], "g": ["a", "b", "c"] * 10})


def q(**query: object) -> dict:
    return {"engine": "toy_count", "query": {"epsilon": 0.1, **query}}


@pytest.fixture
def h(tmp_path: Path):
    harness = LomasHarness(tmp_path, engines={"toy_count": {}})
    harness.add_dataset("ds", FRAME, META)
    yield harness
    harness.close()


def spent(h: LomasHarness) -> Decimal:
    return h.grant("alice", "ds").spent.epsilon


def test_narrowed_allowed_dirs_never_charges_and_says_why(h: LomasHarness, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    h.raw_config["adapters"] = {"local": {"allowed_dirs": [str(elsewhere)]}}
    with caplog.at_level(logging.ERROR, logger="lomas"), h.client(token) as c:
        assert "'ds' is misconfigured" in caplog.text  # detected at start-up
        for _ in range(12):  # more than the grant could pay for
            r = c.post("/v1/datasets/ds/query", json=q())
            assert r.status_code == 503, r.text
            error = r.json()["error"]
            assert error["code"] == "dataset_unavailable"
            assert "nothing was charged" in error["message"] and "configuration" in error["message"]
            assert str(h.data_dir) not in r.text  # no server path to researchers
        cost = c.post("/v1/datasets/ds/cost", json=q())
        dummy = c.post("/v1/datasets/ds/query", json={**q(), "dummy": {"rows": 10}})
    for r in (cost, dummy):
        assert r.status_code == 503 and "configuration" in r.json()["error"]["message"]
    assert spent(h) == 0
    assert h.store.list_archive() == []  # refused before the charge: no record at all


def test_configuration_refused_at_load_time_is_refunded(h: LomasHarness) -> None:
    """A race: the config check passed, the load then refuses the path. Nothing was read."""
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    with h.client(token) as c:
        adapter = h.app_state(c).plugins.adapters["local"]
        adapter._allowed.dirs = []  # type: ignore[attr-defined]
        adapter.check_options = lambda options: None  # type: ignore[method-assign]
        r = c.post("/v1/datasets/ds/query", json=q())
    assert r.status_code == 503 and "nothing was charged" in r.json()["error"]["message"]
    assert spent(h) == 0
    [record] = h.store.list_archive()
    assert record.status == "released"


def _write(path: Path, kind: str) -> None:
    if kind == "missing column":
        pq.write_table(pa.table({"x": [1.0, 2.0]}), path)
    elif kind == "text in a float column":
        pq.write_table(pa.table({"x": ["1.5", "lots"], "g": ["a", "b"]}), path)
    elif kind == "empty file":
        path.write_bytes(b"")
    elif kind == "truncated file":
        pq.write_table(pa.Table.from_pandas(FRAME, preserve_index=False), path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("kind", ["missing column", "text in a float column", "empty file",
                                  "truncated file"])
def test_data_read_but_unusable_keeps_the_charge_and_says_so(h: LomasHarness, kind: str) -> None:
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    _write(h.data_dir / "ds.parquet", kind)
    with h.client(token) as c:
        r = c.post("/v1/datasets/ds/query", json=q(), headers={"Idempotency-Key": "k"})
        again = c.post("/v1/datasets/ds/query", json=q(), headers={"Idempotency-Key": "k"})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "charged_failure" and error["details"]["charged"] is True
    assert "stays charged" in error["message"] and "dataset 'ds'" in error["message"]
    assert again.json() == r.json()  # the retry replays, and is not charged again
    assert spent(h) == Decimal("0.1")
    [record] = h.store.list_archive()
    assert record.status == "failed" and record.error is not None
    assert record.error["code"] == "charged_failure"


def test_the_decision_follows_reads_not_exception_types() -> None:
    """An adapter bug (a plain exception) before reading refunds; after reading it keeps."""
    reads = DataReads()
    with pytest.raises(KeyError):
        reads.run(lambda: {}["x"])
    assert reads.happened is False

    def read_then_fail() -> None:
        note_read()
        raise InvalidRequest("looks like a configuration error, but data was read")

    with pytest.raises(InvalidRequest):
        reads.run(read_then_fail)
    assert reads.happened is True
    note_read()  # outside a tracked load: harmless


class _BuggyAfterRead(Adapter):
    name = "local"

    def version(self, options: object) -> str | None:
        return None

    def load(self, dataset: str, options: object) -> Loaded:
        note_read()
        raise RuntimeError("adapter bug after reading")


def test_adapter_bug_after_reading_keeps_the_charge(h: LomasHarness) -> None:
    token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
    with h.client(token) as c:
        h.app_state(c).plugins.adapters["local"] = _BuggyAfterRead()
        r = c.post("/v1/datasets/ds/query", json=q())
    assert r.status_code == 422 and r.json()["error"]["code"] == "charged_failure"
    assert "adapter bug" not in r.text
    assert spent(h) == Decimal("0.1")
    assert [rec.status for rec in h.store.list_archive()] == ["failed"]
    assert isinstance(h.store.list_archive()[0], ArchiveRecord)


def test_same_key_retry_after_a_crash_replays_the_final_outcome(tmp_path: Path) -> None:
    """A server died while answering (charged, record pending); after the restart the identical
    retry gets the recovered outcome, and is not charged again."""
    h = LomasHarness(tmp_path, engines={"toy_count": {}},
                     store={"name": "sqlite", "options": {"path": str(tmp_path / "lomas.db"),
                                                          "recovery_grace_seconds": 0}})
    try:
        h.add_dataset("ds", FRAME, META)
        token = h.add_user("alice", grant={"ds": (1.0, 0.0)})
        body = q()
        crashed = ArchiveRecord(user="alice", dataset="ds", engine="toy_count",
                                request=body["query"], cost=Budget.of("0.1"), idempotency_key="k")
        from lomas_core.plugins import make_store

        dying = make_store(h.config)  # the server that charged it ...
        dying.charge(crashed)
        dying.close()  # ... is gone (no live owner; the grace of 0 applies)
        with h.client(token) as c:  # the restart runs recovery
            first = c.post("/v1/datasets/ds/query", json=body, headers={"Idempotency-Key": "k"})
            again = c.post("/v1/datasets/ds/query", json=body, headers={"Idempotency-Key": "k"})
        assert first.status_code == 422, first.text
        assert first.json()["error"]["code"] == "charged_failure"
        assert again.json() == first.json()
        assert spent(h) == Decimal("0.1")
        assert [r.status for r in h.store.list_archive()] == ["failed"]
    finally:
        h.close()
