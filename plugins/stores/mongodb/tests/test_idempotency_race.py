"""Issue 24: two requests with one Idempotency-Key racing across each other's completion.

Request B passes the "key unused" check, then request A (same key, on another server) charges and
completes, which releases the key's claim in the grant; B's conditional charge then passes too, and
only the archive's unique key index stops B, after its charge. A crash in that instant must not
leave the key charged twice: one key is charged at most once, ever, and spent equals the archive.
Runs against the real wire server (nx-27017, or ``$MONGODB_URI``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from conftest import MakeStore
from lomas_core.budget import Budget
from lomas_core.errors import IdempotencyConflict
from lomas_core.models import ArchiveRecord
from lomas_core.testing.store_contract import SimulatedCrash, make_record, seed

_REQUEST = {"sql": "SELECT COUNT(*) FROM t", "epsilon": 0.25}


def _pair() -> tuple[ArchiveRecord, ArchiveRecord]:
    """Two requests with the same key and body (two tries of one client request)."""
    return (make_record(epsilon="0.25", idempotency_key="k", request=_REQUEST),
            make_record(epsilon="0.25", idempotency_key="k", request=_REQUEST))


def _race(first: Any, second: Any, a: ArchiveRecord, crash_at: str | None) -> Any:
    """A fault hook for ``second``: A charges and completes on ``first`` right after B's key
    check, then B "dies" at ``crash_at``."""
    def hook(step: str) -> None:
        if step == "charge:checked":
            first.charge(a)
            first.complete(a.id, "success", result={"type": "value", "value": 1})
        elif step == crash_at:
            raise SimulatedCrash(step)
    return hook


def _assert_charged_once(store: Any) -> None:
    grant = store.get_grant("alice", "ds")
    assert grant is not None
    records = store.list_archive(user="alice")
    charged = [r for r in records if r.status != "released"]
    assert grant.spent == sum((r.cost for r in charged), Budget.of(0, 0))
    assert grant.spent.epsilon == Decimal("0.25"), (grant.spent, [(r.status, r.idempotency_key)
                                                                  for r in records])
    assert [r.idempotency_key for r in charged] == ["k"]
    assert store.pending_records() == []
    found = store.find_by_idempotency_key("alice", "k")
    assert found is not None and found.status == "success" and found.request == _REQUEST


@pytest.mark.parametrize("crash_at", ["charge:charged", None])
def test_same_key_racing_across_completion_is_charged_once(make_store: MakeStore,
                                                           crash_at: str | None) -> None:
    first = make_store()
    seed(first, initial=Budget.of("10", "0.001"))
    second = make_store()
    a, b = _pair()
    second.fault_hook = _race(first, second, a, crash_at)
    expected = SimulatedCrash if crash_at else IdempotencyConflict
    with pytest.raises(expected):
        second.charge(b)
    second.fault_hook = None
    if crash_at:
        # B's server is gone; a restarted server recovers what it left.
        second.close()
        restarted = make_store(create=False)
        restarted.recover(grace_seconds=0)
        _assert_charged_once(restarted)
    _assert_charged_once(first)


def test_a_killed_racer_is_refunded_by_a_live_servers_heartbeat(make_store: MakeStore) -> None:
    """As above, but B's owner is known dead (buried) and a live server resolves it without
    any grace: the second charge of the key is refunded, the first stays."""
    first = make_store()
    seed(first, initial=Budget.of("10", "0.001"))
    second = make_store()
    a, b = _pair()
    second.fault_hook = _race(first, second, a, "charge:charged")
    with pytest.raises(SimulatedCrash):
        second.charge(b)
    second.fault_hook = None
    dead = second.owner_id
    assert second._keeper is not None
    second._keeper.stop()  # B's process is gone: it beats no more
    first.owners.update_one({"_id": dead}, {"$set": {"dead": True}})  # as a heartbeat finds it
    first.heartbeat()
    _assert_charged_once(first)
    assert first.owners.count_documents({"_id": dead}) == 0
