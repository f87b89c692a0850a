"""Behaviour specific to the mongodb store: exact units, races, crash recovery, state copy."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from lomas_store_mongodb.codec import format_time
from lomas_store_mongodb.store import MongoStore
from pymongo import MongoClient

from lomas_core.budget import Budget
from lomas_core.errors import (
    AccessDenied,
    BudgetExceeded,
    ConfigError,
    Conflict,
    IdempotencyConflict,
    InvalidRequest,
)
from lomas_core.models import ArchiveRecord, DatasetDescription, User, utcnow

MakeStore = Callable[..., MongoStore]


def _setup(store: MongoStore, epsilon: object = "1.0", delta: object = "0.00001") -> None:
    store.add_user(User(name="alice"))
    store.put_dataset(DatasetDescription(name="ds"))
    store.grant("alice", "ds", Budget.of(epsilon, delta))


def _record(cost: Budget, key: str | None = None, user: str = "alice") -> ArchiveRecord:
    return ArchiveRecord(user=user, dataset="ds", engine="test", request={"sql": "SELECT 1"},
                         cost=cost, idempotency_key=key)


def test_ten_tenths_leave_exactly_zero(store: MongoStore) -> None:
    _setup(store)
    for _ in range(10):
        store.charge(_record(Budget.of(0.1, 1e-6)))
    grant = store.get_grant("alice", "ds")
    assert grant is not None
    assert grant.remaining == Budget(Decimal(0), Decimal(0))
    with pytest.raises(BudgetExceeded):
        store.charge(_record(Budget.of(1e-12)))


def test_cost_finer_than_a_unit_is_checked_rounded_up_and_shown_exactly(store: MongoStore) -> None:
    _setup(store, epsilon="0.000000000002")  # two units
    tiny = Budget.of("0.0000000000001")  # 1e-13, a tenth of a unit: checked as one unit
    store.charge(_record(tiny))
    store.charge(_record(tiny))
    with pytest.raises(BudgetExceeded):
        store.charge(_record(tiny))
    grant = store.get_grant("alice", "ds")
    assert grant is not None and grant.spent.epsilon == Decimal("2E-13")


def test_spent_is_exact_beyond_the_unit(store: MongoStore) -> None:
    _setup(store, epsilon=100, delta="0.5")
    costs = [Budget.of("0.1234567890123456789", "1.2345678901234567E-20"), Budget.of(1 / 3, 1e-9)]
    for cost in costs * 3:
        store.charge(_record(cost))
    grant = store.get_grant("alice", "ds")
    assert grant is not None and grant.spent == (costs[0] + costs[1]) + (costs[0] + costs[1]) + (
        costs[0] + costs[1])
    record = store.list_archive()[0]
    store.release(record.id)
    grant = store.get_grant("alice", "ds")
    assert grant is not None and grant.spent == costs[1] + (costs[0] + costs[1]) + (costs[0] + costs[1])


def test_awkward_initial_is_shown_exactly_and_checked_conservatively(store: MongoStore) -> None:
    _setup(store, epsilon=1 / 3)
    grant = store.get_grant("alice", "ds")
    assert grant is not None and grant.initial.epsilon == Decimal("0.3333333333333333")
    with pytest.raises(BudgetExceeded):
        store.charge(_record(Budget.of(1 / 3)))  # fits exactly on paper, not after rounding down


def test_budget_too_large_is_a_clear_400(store: MongoStore) -> None:
    store.add_user(User(name="alice"))
    store.put_dataset(DatasetDescription(name="ds"))
    with pytest.raises(InvalidRequest, match="too large"):
        store.grant("alice", "ds", Budget.of("1e10"))
    store.grant("alice", "ds", Budget.of(10))
    with pytest.raises(BudgetExceeded):
        store.charge(_record(Budget.of("1e30")))


def test_no_grant_is_access_denied(store: MongoStore) -> None:
    _setup(store)
    with pytest.raises(AccessDenied):
        store.charge(_record(Budget.of(0.1), user="bob"))


def test_concurrent_charges_from_two_clients_never_overspend(make_store: MakeStore) -> None:
    first = make_store()
    second = make_store()
    _setup(first)
    ok: list[Budget] = []
    refused: list[Exception] = []
    lock = threading.Lock()

    def worker(store: MongoStore) -> None:
        try:
            remaining = store.charge(_record(Budget.of(0.1)))
            with lock:
                ok.append(remaining)
        except BudgetExceeded as exc:
            with lock:
                refused.append(exc)

    threads = [threading.Thread(target=worker, args=(first if i % 2 else second,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ok) == 10 and len(refused) == 30
    assert sorted(r.epsilon for r in ok) == [Decimal(i) / 10 for i in range(10)]
    assert len(first.list_archive()) == 10
    grant = first.get_grant("alice", "ds")
    assert grant is not None and grant.remaining.epsilon == 0


def test_idempotency_key_race_charges_once(make_store: MakeStore) -> None:
    first, second = make_store(), make_store()
    _setup(first)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker(store: MongoStore) -> None:
        try:
            store.charge(_record(Budget.of(0.1), key="same-key"))
            result = "charged"
        except IdempotencyConflict:
            result = "conflict"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=worker, args=(s,)) for s in (first, second) * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("charged") == 1
    grant = first.get_grant("alice", "ds")
    assert grant is not None and grant.spent.epsilon == Decimal("0.1")
    assert first.find_by_idempotency_key("alice", "same-key") is not None
    assert len(first.list_archive()) == 1


def test_release_refunds_once_and_complete_blocks_release(store: MongoStore) -> None:
    _setup(store)
    a = _record(Budget.of(0.3))
    b = _record(Budget.of(0.2))
    store.charge(a)
    store.charge(b)
    store.release(a.id)
    store.release(a.id)
    store.complete(b.id, "success", result={"type": "value", "value": 1})
    store.release(b.id)
    grant = store.get_grant("alice", "ds")
    assert grant is not None and grant.spent.epsilon == Decimal("0.2")
    assert store.get_record(a.id).status == "released"
    assert store.get_record(b.id).result == {"type": "value", "value": 1}
    assert store.pending_records() == []


def test_hostile_keys_in_requests_are_stored_as_data(store: MongoStore) -> None:
    _setup(store)
    request = {"$where": "sleep(1000)", "a.b": {"$gt": ""}}
    record = ArchiveRecord(user="alice", dataset="ds", engine="test", request=request,
                           cost=Budget.of(0.1))
    store.charge(record)
    assert store.get_record(record.id).request == request
    with pytest.raises(InvalidRequest):
        store.charge(ArchiveRecord(id="bad.id", user="alice", dataset="ds", engine="t", request={},
                                   cost=Budget.of(0.1)))


def test_recovery_archives_a_charge_left_without_record(store: MongoStore) -> None:
    _setup(store)
    # State left by a crash between the charge update and the archive insert.
    old = utcnow() - timedelta(hours=1)
    lost = Budget.of("0.2")
    store.grants.update_one({"_id": "alice/ds"}, {
        "$inc": {"rem_eps": -200_000_000_000, **store.scale.limbs(lost)},
        "$set": {"pending.crashed1": {"cost": lost.as_strings(), "engine": "test",
                                      "created_at": format_time(old), "idem": "k1"}}})
    # And a release that refunded but died before marking its record.
    rec = _record(Budget.of(0.1))
    store.charge(rec)
    # Its owner is gone (no owner document: it closed), so the grace applies.
    store.archive.update_one({"_id": rec.id}, {"$set": {"created_at": format_time(old)},
                                               "$unset": {"owner": ""}})
    store._refund("alice/ds", rec.id, rec.cost)
    report = store.recover(grace_seconds=60)
    assert (report.archived, report.released) == (1, 1)
    crashed = store.get_record("crashed1")
    assert crashed.status == "failed" and crashed.cost.epsilon == Decimal("0.2")
    assert store.find_by_idempotency_key("alice", "k1") is not None
    assert store.get_record(rec.id).status == "released"
    grant = store.get_grant("alice", "ds")
    assert grant is not None and grant.spent.epsilon == Decimal("0.2")  # the crashed charge stays
    assert store.recover(grace_seconds=0).total == 0


def test_recovery_leaves_young_entries_alone(store: MongoStore) -> None:
    _setup(store)
    store.grants.update_one({"_id": "alice/ds"}, {"$set": {"pending.young": {
        "cost": {"epsilon": "0", "delta": "0"}, "engine": "t", "created_at": format_time(utcnow()),
        "idem": None}}})
    assert store.recover(grace_seconds=600).total == 0


def test_state_round_trip(make_store: MakeStore, mongodb_uri: str) -> None:
    source = make_store()
    _setup(source)
    source.add_token("alice", "ab" * 32)
    done, pending = _record(Budget.of(0.25), key="k"), _record(Budget.of(0.5))
    source.charge(done)
    source.complete(done.id, "failed", error={"code": "query_failed", "message": "x"})
    source.charge(pending)
    state = source.export_state()
    target = make_store(database=source.db.name + "_copy")
    try:
        target.import_state(state)
        assert target.export_state() == state
        target.release(pending.id)  # the imported pending charge is still tracked and refundable
        grant = target.get_grant("alice", "ds")
        assert grant is not None and grant.spent.epsilon == Decimal("0.25")
        with pytest.raises(Conflict):
            target.import_state(state)
    finally:
        MongoClient(mongodb_uri).drop_database(source.db.name + "_copy")


def test_unit_scale_cannot_change_under_existing_data(make_store: MakeStore) -> None:
    make_store()
    with pytest.raises(ConfigError, match="epsilon_digits"):
        make_store(epsilon_digits=9)


def test_same_key_retry_while_the_first_charge_is_unarchived_is_not_charged_again(
        make_store: MakeStore) -> None:
    """The issue's deterministic case: a delay between the charge and the archive copy."""
    first_server, second_server = make_store(), make_store()
    _setup(first_server)
    charged, go_on = threading.Event(), threading.Event()

    def slow(step: str) -> None:
        if step == "charge:charged":
            charged.set()
            go_on.wait(10)

    first_server.fault_hook = slow
    first = _record(Budget.of(0.1), key="k")
    worker = threading.Thread(target=first_server.charge, args=(first,))
    worker.start()
    try:
        assert charged.wait(10)
        assert first_server.archive.count_documents({}) == 0  # the archive copy is not there yet
        seen = second_server.find_by_idempotency_key("alice", "k")
        assert seen is not None and seen.id == first.id and seen.status == "pending"
        assert seen.request == first.request
        with pytest.raises(IdempotencyConflict):
            second_server.charge(_record(Budget.of(0.1), key="k"))
        assert [r.id for r in second_server.pending_records()] == [first.id]
    finally:
        go_on.set()
        worker.join(10)
    grant = second_server.get_grant("alice", "ds")
    assert grant is not None and grant.spent.epsilon == Decimal("0.1")


def test_recovery_keeps_the_request_and_the_key(make_store: MakeStore) -> None:
    crashed = make_store()
    _setup(crashed)

    def die(step: str) -> None:
        if step == "charge:charged":
            raise KeyboardInterrupt  # stands in for kill -9: nothing after this step runs

    crashed.fault_hook = die
    record = ArchiveRecord(user="alice", dataset="ds", engine="test",
                           request={"sql": "SELECT COUNT(*) FROM t", "a.b": {"$gt": 1}},
                           cost=Budget.of(0.1), idempotency_key="k")
    with pytest.raises(KeyboardInterrupt):
        crashed.charge(record)
    crashed.close()  # its owner document goes: the grace applies
    restarted = make_store(recovery_grace_seconds=0)
    found = restarted.find_by_idempotency_key("alice", "k")
    assert found is not None and found.id == record.id
    assert found.request == record.request  # an identical retry replays, no idempotency_key_reused
    assert found.status == "failed" and found.error is not None
    assert found.error["code"] == "charged_failure"
    grant = restarted.get_grant("alice", "ds")
    assert grant is not None and grant.spent.epsilon == Decimal("0.1")
    assert restarted.grants.find_one({"_id": "alice/ds"})["keys"] == {}


def test_recovery_finishes_a_query_whose_server_died_while_it_ran(make_store: MakeStore) -> None:
    first = make_store()
    _setup(first)
    record = _record(Budget.of(0.1), key="k")
    first.charge(record)  # ... and the process dies while the query runs
    young = make_store(recovery_grace_seconds=0)  # its owner lives: left alone, whatever the age
    assert young.get_record(record.id).status == "pending"
    # The owner is found dead (as a heartbeat does when its lease expires): no grace wait.
    first.owners.update_one({"_id": first.owner_id}, {"$set": {"dead": True}})
    restarted = make_store()
    done = restarted.get_record(record.id)
    assert done.status == "failed" and done.error is not None
    assert done.error["code"] == "charged_failure"
    assert restarted.pending_records() == []
    grant = restarted.get_grant("alice", "ds")
    assert grant is not None and grant.spent.epsilon == Decimal("0.1")


def test_a_dropped_database_is_refused_not_recreated(make_store: MakeStore, mongodb_uri: str) -> None:
    store = make_store()
    _setup(store)
    MongoClient(mongodb_uri).drop_database(store.db.name)
    with pytest.raises(ConfigError, match="lomas admin init"):
        make_store(create=False)
    with pytest.raises(Exception, match="mongodump"):
        store.backup("/tmp/x")
