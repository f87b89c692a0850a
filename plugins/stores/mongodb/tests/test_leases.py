"""Owner leases on MongoDB: an owner that stops beating is dead to the others after its lease
(measured on the observer's clock); one that beats is never touched; a buried owner that wakes
up registers anew and cannot undo what was resolved."""

from __future__ import annotations

import time
from decimal import Decimal

from conftest import MakeStore
from lomas_core.budget import Budget
from lomas_core.testing.store_contract import make_record, seed

#: Generous bound for a loaded machine; the hung owner's lease is 1 s.
PATIENCE = 60


def test_an_owner_that_stops_beating_is_resolved_after_its_lease(make_store: MakeStore) -> None:
    hung = make_store(lease_seconds=1)
    seed(hung)
    record = make_record(idempotency_key="hung")
    hung.charge(record)
    assert hung._keeper is not None
    hung._keeper.stop()  # alive (same pid) but no longer renewing its lease
    live = make_store(lease_seconds=30)
    live.charge(make_record(idempotency_key="live"))
    watcher = make_store(lease_seconds=30, recovery_grace_seconds=600)
    assert watcher.heartbeat() == 0  # first sight of the hung owner's beat: not yet judged
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline and watcher.get_record(record.id).status == "pending":
        time.sleep(0.2)
        watcher.heartbeat()
    done = watcher.get_record(record.id)
    assert done.status == "failed" and done.error is not None
    assert done.error["code"] == "charged_failure"
    assert watcher.owners.count_documents({"_id": hung.owner_id}) == 0
    kept = watcher.find_by_idempotency_key("alice", "live")
    assert kept is not None and kept.status == "pending"  # a beating owner is never touched

    # The hung owner wakes up: it learns it was declared dead and registers under a new id.
    old = hung.owner_id
    hung.heartbeat()
    assert hung.owner_id != old and hung.owners.count_documents({"_id": hung.owner_id}) == 1
    hung.complete(record.id, "success", result={"type": "value", "value": 1})
    assert watcher.get_record(record.id).status == "failed"  # final stays final
    grant = watcher.get_grant("alice", "ds")
    assert grant is not None and grant.spent.epsilon == Decimal("0.2")
    charged = [r for r in watcher.list_archive(user="alice") if r.status != "released"]
    assert grant.spent == sum((r.cost for r in charged), Budget.of(0, 0))


def test_a_closed_owner_hands_its_records_to_the_grace(make_store: MakeStore) -> None:
    """A clean close withdraws the owner: leftovers wait for ``recovery_grace_seconds``."""
    closing = make_store()
    seed(closing)
    record = make_record(idempotency_key="left")
    closing.charge(record)
    closing.close()
    assert make_store(recovery_grace_seconds=600).get_record(record.id).status == "pending"
    assert make_store(recovery_grace_seconds=0).get_record(record.id).status == "failed"
