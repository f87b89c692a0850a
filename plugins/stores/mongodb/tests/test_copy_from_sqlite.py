"""Moving state from the embedded sqlite store to mongodb (and back) with export/import_state."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from lomas_store_mongodb.store import MongoStore

from lomas_core.budget import Budget
from lomas_core.config import Config, PluginConfig
from lomas_core.errors import BudgetExceeded, IdempotencyConflict
from lomas_core.models import ArchiveRecord, DatasetDescription, User
from lomas_core.plugins import make_store
from lomas_core.store import BudgetStore

MakeStore = Callable[..., MongoStore]


def _sqlite(path: Path) -> BudgetStore:
    return make_store(Config(store=PluginConfig(name="sqlite", options={"path": str(path)})),
                      create=True)


def _record(user: str, epsilon: str, key: str | None = None) -> ArchiveRecord:
    return ArchiveRecord(user=user, dataset="ds", engine="smartnoise_sql",
                         request={"sql": "SELECT COUNT(*) FROM t", "$odd": {"a.b": 1}},
                         cost=Budget.of(epsilon, "0.000001"), idempotency_key=key)


def test_sqlite_to_mongodb_and_back(tmp_path: Path, make_store: MakeStore) -> None:
    source = _sqlite(tmp_path / "source.db")
    try:
        source.add_user(User(name="alice"))
        source.add_user(User(name="root", is_admin=True))
        source.add_token("root", "f" * 64)
        source.put_dataset(DatasetDescription(name="ds", options={"path": "/data/ds.parquet"}))
        source.grant("alice", "ds", Budget.of("1.0", "0.00001"))
        done = _record("alice", "0.1234567890123456789", key="k1")
        source.charge(done)
        source.complete(done.id, "success", result={"type": "value", "value": 2.5})
        still_pending = _record("alice", "0.3")
        source.charge(still_pending)
        state = source.export_state()
    finally:
        source.close()

    target = make_store()
    target.import_state(state)
    assert target.export_state() == state
    root = target.user_for_token("f" * 64)
    assert root is not None and root.same_as(User(name="root", is_admin=True))
    grant = target.get_grant("alice", "ds")
    assert grant is not None and grant.spent.epsilon == Decimal("0.4234567890123456789")
    with pytest.raises(IdempotencyConflict):
        target.charge(_record("alice", "0.1", key="k1"))
    target.release(still_pending.id)  # the pending charge moved with its tracking
    # The check counts 0.1234567890123456789 as 0.123456789013 (rounded up to 1e-12), so what is
    # left for the check is 0.876543210987, a little less than the exact 0.8765432109876543211.
    with pytest.raises(BudgetExceeded):
        target.charge(_record("alice", "0.8765432109876543211"))
    target.charge(_record("alice", "0.876543210987"))
    with pytest.raises(BudgetExceeded):
        target.charge(_record("alice", "0.000000000001"))

    back = _sqlite(tmp_path / "back.db")
    try:
        exported = target.export_state()
        back.import_state(exported)
        assert back.export_state() == exported
        grant = back.get_grant("alice", "ds")
        assert grant is not None and grant.remaining.epsilon == Decimal("6.543211E-13")
    finally:
        back.close()
