"""Contract tests of the admin side of a store: stable dataset and grant ids, audit-log entries
written with their change (also when the process dies in between), and ``reset_spent`` with a
query still running. Part of :class:`lomas_core.testing.store_contract.StoreContract`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from lomas_core.budget import Budget
from lomas_core.errors import BudgetExceeded, Conflict, NotFound
from lomas_core.models import AdminEvent, User
from lomas_core.store import BudgetStore

__all__ = ["AdminStoreContract", "LastUsedContract"]


def _ev(action: str, after: dict[str, Any] | None = None) -> AdminEvent:
    return AdminEvent(actor="test", action=action, target="t", after=after)


def _logged(store: BudgetStore) -> list[AdminEvent]:
    events, cursor = store.list_admin_events(limit=1000)
    assert cursor is None
    return events


#: Admin changes for the crash test: (name, change, whether it happened). Each starts from
#: :func:`_base` (alice, bob, datasets ds and ds2, alice granted ds, a token of alice).
_Change = tuple[str, Callable[[BudgetStore, AdminEvent], None], Callable[[BudgetStore], bool]]


def _changes() -> list[_Change]:
    def has_user(name: str) -> Callable[[BudgetStore], bool]:
        return lambda s: name in {u.name for u in s.list_users()}

    return [  # in an order that also works one after the other
        ("add_user", lambda s, e: s.add_user(User(name="carol"), event=e), has_user("carol")),
        ("suspend", lambda s, e: s.set_suspended("alice", True, event=e) and None,
         lambda s: s.get_user("alice").suspended),
        ("add_token", lambda s, e: s.add_token("alice", "hash-new", token_id="tok_new", event=e)
         and None, lambda s: "tok_new" in [t.id for t in s.list_tokens("alice")]),
        ("revoke_token", lambda s, e: s.revoke_token("alice", "tok_a", event=e),
         lambda s: "tok_a" not in [t.id for t in s.list_tokens("alice")]),
        ("revoke_tokens", lambda s, e: s.revoke_tokens("alice", event=e) and None,
         lambda s: s.list_tokens("alice") == []),
        ("put_dataset", lambda s, e: s.put_dataset(_dataset("ds3"), event=e),
         lambda s: "ds3" in {d.name for d in s.list_datasets()}),
        ("replace_dataset", lambda s, e: s.put_dataset(
            _dataset("ds2").model_copy(update={"description": "new"}), replace=True, event=e),
         lambda s: s.get_dataset("ds2").description == "new"),
        ("grant", lambda s, e: s.grant("bob", "ds", Budget.of(1), event=e),
         lambda s: s.get_grant("bob", "ds") is not None),
        ("set_budget", lambda s, e: s.set_initial_budget("alice", "ds", Budget.of(7), event=e),
         lambda s: (g := s.get_grant("alice", "ds")) is not None and g.initial == Budget.of(7)),
        ("revoke", lambda s, e: s.revoke("alice", "ds", event=e),
         lambda s: s.get_grant("alice", "ds") is None),
        ("remove_dataset", lambda s, e: s.remove_dataset("ds2", event=e),
         lambda s: "ds2" not in {d.name for d in s.list_datasets()}),
        ("remove_user", lambda s, e: s.remove_user("bob", event=e), lambda s: not has_user("bob")(s)),
    ]


def _dataset(name: str) -> Any:
    from lomas_core.testing.store_contract import _dataset as make

    return make(name)


def _base(store: BudgetStore) -> None:
    from lomas_core.testing.store_contract import seed

    seed(store)
    store.add_user(User(name="bob"))
    store.put_dataset(_dataset("ds2"))
    store.add_token("alice", "hash-a", token_id="tok_a")
    store.add_token("bob", "hash-b", token_id="tok_b")
    store.grant("bob", "ds2", Budget.of(1))


class AdminStoreContract:
    """Mixed into StoreContract (which provides the ``store`` and ``store_spec`` fixtures)."""

    def test_datasets_and_grants_have_stable_ids(self, store: BudgetStore) -> None:
        from lomas_core.testing.store_contract import make_record, seed

        seed(store)
        first = store.get_dataset("ds")
        assert first.id is not None and first.id.startswith("ds_")
        assert [d.id for d in store.list_datasets()] == [first.id]
        store.put_dataset(first.model_copy(update={"description": "new", "id": "ds_forged"}),
                          replace=True)
        assert store.get_dataset("ds").id == first.id  # a replaced description keeps its id
        grant = store.get_grant("alice", "ds")
        assert grant is not None and grant.id is not None and grant.id.startswith("grt_")
        assert grant.dataset_id == first.id
        assert [g.id for g in store.list_grants()] == [grant.id]
        old = make_record(epsilon="0.25")
        store.charge(old)
        assert old.dataset_id == first.id
        store.revoke("alice", "ds")
        store.grant("alice", "ds", Budget.of(2), reset_spent=True)
        again = store.get_grant("alice", "ds")
        assert again is not None and again.id == grant.id  # the same pair, the same grant
        store.remove_dataset("ds")
        store.put_dataset(_dataset("ds"))
        second = store.get_dataset("ds")
        assert second.id is not None and second.id != first.id
        store.grant("alice", "ds", Budget.of(1))
        fresh = store.get_grant("alice", "ds")
        assert fresh is not None and fresh.id != grant.id and fresh.dataset_id == second.id
        assert fresh.spent == Budget.of(0, 0)  # nothing of the old dataset's spend
        new = make_record(epsilon="0.5")
        store.charge(new)
        by_id = {r.id: r.dataset_id for r in store.list_archive(dataset="ds")}
        assert by_id == {old.id: first.id, new.id: second.id}
        assert store.get_record(old.id).dataset_id == first.id
        state = store.export_state()
        assert state["datasets"][0]["id"] == second.id
        assert state["grants"][0]["id"] == fresh.id
        assert {r["dataset_id"] for r in state["archive"]} == {first.id, second.id}

    def test_admin_changes_write_their_log_entry(self, store: BudgetStore) -> None:
        _base(store)
        assert _logged(store) == []
        for name, change, happened in _changes():
            fresh = _ev(name, after={})
            change(store, fresh)
            assert happened(store), name
            assert _logged(store)[-1].id == fresh.id, name
        actions = [e.action for e in _logged(store)]
        assert actions == [name for name, _, _ in _changes()]
        by_action = {e.action: e for e in _logged(store)}
        assert by_action["add_user"].after is not None
        assert by_action["add_user"].after["id"] == store.get_user("carol").id
        assert by_action["put_dataset"].after["id"] == store.get_dataset("ds3").id  # type: ignore[index]
        assert str(by_action["grant"].after["id"]).startswith("grt_")  # type: ignore[index]
        # A refused change writes nothing.
        count = len(_logged(store))
        with pytest.raises(Conflict):
            store.add_user(User(name="carol"), event=_ev("again"))
        with pytest.raises(NotFound):
            store.revoke("nobody", "ds", event=_ev("again"))
        with pytest.raises(Conflict):
            store.put_dataset(_dataset("ds3"), event=_ev("again"))
        assert len(_logged(store)) == count

    @pytest.mark.parametrize("name", [c[0] for c in _changes()])
    def test_a_crash_never_separates_a_change_from_its_log_entry(
            self, store: BudgetStore, store_spec: Any, name: str) -> None:
        """Kill the process at every step of an admin change; after a restart the log holds the
        entry if and only if the change happened."""
        from lomas_core.testing.store_contract import SimulatedCrash, _crash_at, build_store

        change, happened = next((c, h) for n, c, h in _changes() if n == name)
        _base(store)
        steps: list[str] = []
        # Learn the steps on a throw-away copy of the same state: the real run comes next.
        copy_spec = _copy_spec(store_spec)
        if copy_spec is None:
            pytest.skip("no second store spec")
        learner = build_store(copy_spec, create=True)
        try:
            _base(learner)
            learner.fault_hook = steps.append
            change(learner, _ev(name, after={}))
        finally:
            learner.fault_hook = None
            learner.close()
        assert "admin:changed" in steps, steps
        current = store
        try:
            for step in steps:
                current.close()
                _reset(store_spec)
                current = build_store(store_spec, create=True)
                _base(current)
                entry = _ev(name, after={})
                current.fault_hook = _crash_at(step)
                with pytest.raises(SimulatedCrash):
                    change(current, entry)
                current.fault_hook = None
                current.close()
                current = build_store(store_spec)  # restart
                current.reconcile_admin_log(grace_seconds=0)
                logged = [e.id for e in _logged(current)]
                assert (entry.id in logged) == happened(current), (name, step, logged)
                # Nothing is left half-done: bob and ds2 are there with all that is theirs, or gone.
                if "bob" in {u.name for u in current.list_users()}:
                    assert [t.id for t in current.list_tokens("bob")] == ["tok_b"], (name, step)
                    if "ds2" in {d.name for d in current.list_datasets()}:
                        assert current.get_grant("bob", "ds2") is not None, (name, step)
        finally:
            current.fault_hook = None
            if current is not store:
                current.close()

    def test_reset_spent_never_goes_below_zero_with_a_query_running(self,
                                                                    store: BudgetStore) -> None:
        from lomas_core.testing.store_contract import make_record, seed

        seed(store, initial=Budget.of(1, "0.0001"))
        done = make_record(epsilon="0.25")
        store.charge(done)
        store.complete(done.id, "success", result={"type": "value", "value": 1})
        running = make_record(epsilon="0.5", delta="0.00005")
        other = make_record(epsilon="0.125")
        store.charge(running)
        store.charge(other)
        store.revoke("alice", "ds")
        store.grant("alice", "ds", Budget.of(1, "0.0001"), reset_spent=True)
        store.release(running.id)  # refused before reading private data: refunded
        grant = store.get_grant("alice", "ds")
        assert grant is not None
        assert grant.spent.epsilon >= 0 and grant.spent.delta >= 0, grant.spent
        store.complete(other.id, "success", result={"type": "value", "value": 2})
        grant = store.get_grant("alice", "ds")
        assert grant is not None and grant.spent == Budget.of(0, 0)  # the reset's fresh start
        assert grant.remaining == Budget.of(1, "0.0001")  # never more than granted
        store.charge(make_record(epsilon=grant.remaining.epsilon))  # exactly usable
        with pytest.raises(BudgetExceeded):
            store.charge(make_record(epsilon="0.000001"))


def _copy_spec(spec: Any) -> Any:
    from lomas_core.testing.store_contract import derive_spec

    return derive_spec(spec, "steps")


def _reset(spec: Any) -> None:
    """Empty the store named by ``spec`` (a file removed, a database dropped)."""
    from pathlib import Path

    name, options, *_ = spec
    if isinstance(options.get("path"), str):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{options['path']}{suffix}").unlink(missing_ok=True)
    elif isinstance(options.get("database"), str) and isinstance(options.get("uri"), str):
        from pymongo import MongoClient

        client: MongoClient[dict[str, Any]] = MongoClient(options["uri"])
        try:
            client.drop_database(options["database"])
        finally:
            client.close()
    else:
        pytest.skip(f"cannot empty a {name} store between runs")


class LastUsedContract:
    """Authentication records a token's last use at most once per resolution, off its path."""

    def test_last_use_is_debounced_and_off_the_request_path(self, store: BudgetStore) -> None:
        from datetime import datetime, timedelta

        from lomas_core.tokens import LastUsed

        store.add_user(User(name="alice"))
        store.add_token("alice", "hash-a", token_id="tok_a")
        recorder = getattr(store, "last_used", None)
        if not isinstance(recorder, LastUsed):
            pytest.skip("the store records last use its own way")
        writes: list[str] = []
        real = recorder._write
        def counting(token_hash: str, when: datetime) -> None:
            writes.append(token_hash)
            real(token_hash, when)

        recorder._write = counting
        try:
            for _ in range(50):
                assert store.user_for_token("hash-a") is not None
            recorder.flush()
            assert len(writes) == 1  # fifty authentications, one write
            first = store.list_tokens("alice")[0].last_used_at
            assert first is not None
            for _ in range(5):
                store.user_for_token("hash-a")
            assert store.list_tokens("alice")[0].last_used_at == first and len(writes) == 1
            recorder.resolution = timedelta(0)  # the option set to 0: every use is recorded
            store.user_for_token("hash-a")
            recorder.flush()
            later = store.list_tokens("alice")[0].last_used_at
            assert len(writes) == 2 and later is not None and later >= first
        finally:
            recorder._write = real
