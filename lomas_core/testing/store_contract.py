"""Contract tests every budget-store plugin must pass.

A store plugin's test module subclasses :class:`StoreContract` and provides a ``store_spec``
fixture: ``(plugin name, options)`` or ``(plugin name, options, extra Config kwargs)``. The spec must
be picklable, because the concurrency test rebuilds the store from it in child processes (the
"spawn" start method), and it must name a fresh, empty store for every test::

    import pytest
    from lomas_core.testing.store_contract import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store_spec(self, tmp_path):
            return ("mystore", {"uri": "...", "database": f"t_{tmp_path.name}"})

        @pytest.fixture   # optional: an independent empty store for the export/import test
        def second_store_spec(self, tmp_path):
            return ("mystore", {"uri": "...", "database": f"t2_{tmp_path.name}"})

Without ``second_store_spec`` the suite derives one by renaming a ``path`` option (files) or a
``database`` option; otherwise that test is skipped. The store is built through
:func:`lomas_core.plugins.make_store`, so the plugin's entry point must be installed. Stores are
closed after each test; cleaning up the backend (dropping databases) is the subclass's job.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from lomas_core.budget import Budget
from lomas_core.config import Config, PluginConfig
from lomas_core.errors import (
    AccessDenied,
    BudgetExceeded,
    ConfigError,
    Conflict,
    IdempotencyConflict,
    InvalidRequest,
    LomasError,
    NotFound,
    Suspended,
)
from lomas_core.metadata import Metadata
from lomas_core.models import AdminEvent, ArchiveRecord, DatasetDescription, User
from lomas_core.plugins import make_store
from lomas_core.store import ArchiveFilter, BudgetStore
from lomas_core.testing.store_contract_admin import AdminStoreContract, LastUsedContract

__all__ = ["SimulatedCrash", "StoreContract", "StoreSpec", "build_store", "derive_spec",
           "make_record", "seed"]

#: ``(name, options)`` or ``(name, options, extra Config kwargs)``.
StoreSpec = tuple[Any, ...]

SPENDERS = 64
PROCESSES = 2


def build_store(spec: StoreSpec, *, create: bool = False) -> BudgetStore:
    """Build a store from a spec through the plugin machinery (as the server does).

    ``create`` as ``lomas admin init`` does; without it a missing or empty store must be refused.
    """
    name, options, *rest = spec
    extra: dict[str, Any] = dict(rest[0]) if rest else {}
    config = Config(store=PluginConfig(name=name, options=dict(options)), **extra)
    return make_store(config, create=create)


def derive_spec(spec: StoreSpec, suffix: str = "second") -> StoreSpec | None:
    """A spec for another empty store next to ``spec``, or None when it cannot be guessed."""
    name, options, *rest = spec
    options = dict(options)
    if isinstance(options.get("path"), str):
        options["path"] = f"{options['path']}.{suffix}"
    elif isinstance(options.get("database"), str):
        options["database"] = f"{options['database']}_{suffix}"
    else:
        return None
    return (name, options, *rest)


def seed(store: BudgetStore, user: str = "alice", dataset: str = "ds",
         initial: Budget | None = None) -> None:
    """Create ``user`` and ``dataset`` (when absent) and grant ``initial`` (default 1.0, 1e-5)."""
    try:
        store.add_user(User(name=user))
    except Conflict:
        pass
    try:
        store.put_dataset(_dataset(dataset))
    except Conflict:
        pass
    store.grant(user, dataset, initial or Budget.of("1.0", "0.00001"))


def make_record(user: str = "alice", dataset: str = "ds", epsilon: Any = "0.1", delta: Any = 0,
                **kwargs: Any) -> ArchiveRecord:
    """A pending archive record costing (epsilon, delta)."""
    kwargs.setdefault("request", {"sql": "SELECT COUNT(*) FROM t", "epsilon": 0.1})
    kwargs.setdefault("engine", "smartnoise_sql")
    return ArchiveRecord(user=user, dataset=dataset, cost=Budget.of(epsilon, delta), **kwargs)


def _same(user: User | None, expected: User) -> bool:
    """``user`` is ``expected`` apart from the store-given id."""
    return user is not None and user.same_as(expected)


class SimulatedCrash(BaseException):  # noqa: N818 - it is not an error, it is a kill
    """Raised by a fault hook: the process "dies" at a step (nothing after it runs)."""


def _lifecycle(store: BudgetStore, record: ArchiveRecord, outcome: str) -> None:
    """What the server does with a query: charge, then complete or release."""
    store.charge(record)
    if outcome == "release":
        store.release(record.id)
    elif outcome == "success":
        store.complete(record.id, "success", result={"type": "value", "value": 1})
    else:
        store.complete(record.id, "failed", error={"code": "query_failed", "message": "x"})


def _crash_at(step: str) -> Any:
    def hook(name: str) -> None:
        if name == step:
            raise SimulatedCrash(step)
    return hook


def _archived_spend(store: BudgetStore, user: str, dataset: str) -> Budget:
    return sum((r.cost for r in store.list_archive(user=user, dataset=dataset)
                if r.status != "released"), Budget.of(0, 0))


def _charge_and_die(spec: StoreSpec, key: str) -> None:
    """A real process opens the store, charges a record with ``key`` and is killed with SIGKILL."""
    import subprocess
    import sys

    code = ("import json, os, sys; from lomas_core.testing.store_contract import build_store, "
            "make_record; s = build_store(tuple(json.loads(sys.argv[1]))); "
            "s.charge(make_record(idempotency_key=sys.argv[2])); os.kill(os.getpid(), 9)")
    done = subprocess.run([sys.executable, "-c", code, json.dumps(list(spec), default=str), key],
                          check=False, capture_output=True, timeout=120)
    assert done.returncode == -9, done.stderr.decode(errors="replace")[-2000:]


def _dataset(name: str) -> DatasetDescription:
    metadata = Metadata.model_validate({"max_ids": 1, "rows": 10, "columns": {
        "age": {"type": "int", "lower": 0, "upper": 120},
        "city": {"type": "string", "categories": ["Bern", "Zürich"]}}})
    return DatasetDescription(name=name, adapter="local", options={"path": f"/data/{name}.parquet"},
                              metadata=metadata, description=f"the {name} dataset")


def _spend_worker(spec: StoreSpec, threads: int, barrier: Any, queue: Any) -> None:
    """Child process body of the concurrency test: ``threads`` concurrent charges of 0.1."""
    outcomes: list[tuple[str, str]] = []
    lock = threading.Lock()
    try:
        store = build_store(spec)
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        barrier.abort()
        queue.put([("error", f"build: {type(exc).__name__}: {exc}")])
        return
    start = threading.Barrier(threads)

    def spend() -> None:
        start.wait()
        try:
            remaining = store.charge(make_record(epsilon="0.1", delta="0.000001"))
            outcome = ("ok", f"{remaining.epsilon}|{remaining.delta}")
        except BudgetExceeded:
            outcome = ("exceeded", "")
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            outcome = ("error", f"{type(exc).__name__}: {exc}")
        with lock:
            outcomes.append(outcome)

    try:
        barrier.wait(timeout=60)
        workers = [threading.Thread(target=spend) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        store.close()
        queue.put(outcomes)


class StoreContract(AdminStoreContract, LastUsedContract):
    """Shared tests; see the module docstring for what a subclass provides."""

    @pytest.fixture
    def store_spec(self) -> StoreSpec:
        raise NotImplementedError("a StoreContract subclass must define the store_spec fixture")

    @pytest.fixture
    def second_store_spec(self, store_spec: StoreSpec) -> StoreSpec | None:
        return derive_spec(store_spec)

    @pytest.fixture
    def store(self, store_spec: StoreSpec) -> Iterator[BudgetStore]:
        store = build_store(store_spec, create=True)
        yield store
        store.close()

    # -- explicit creation -----------------------------------------------------------------------
    def test_a_missing_store_is_refused_not_created(self, second_store_spec: StoreSpec | None) -> None:
        if second_store_spec is None:
            pytest.skip("no second store spec")
        with pytest.raises(ConfigError, match="lomas admin init"):
            build_store(second_store_spec)
        created = build_store(second_store_spec, create=True)
        try:
            seed(created)
        finally:
            created.close()
        again = build_store(second_store_spec, create=True)  # init on an existing store keeps it
        try:
            assert again.get_grant("alice", "ds") is not None
        finally:
            again.close()
        reopened = build_store(second_store_spec)
        reopened.close()

    # -- basics --------------------------------------------------------------------------------
    def test_is_budget_store(self, store: BudgetStore, store_spec: StoreSpec) -> None:
        assert isinstance(store, BudgetStore)
        assert store.name == store_spec[0]
        store.ping()

    def test_users(self, store: BudgetStore) -> None:
        store.add_user(User(name="bob"))
        store.add_user(User(name="alice", is_admin=True))
        assert store.get_user("alice").same_as(User(name="alice", is_admin=True))
        assert [u.name for u in store.list_users()] == ["alice", "bob"]
        with pytest.raises(Conflict):
            store.add_user(User(name="bob", is_admin=True))
        with pytest.raises(NotFound):
            store.get_user("carol")
        with pytest.raises(NotFound):
            store.remove_user("carol")
        store.remove_user("bob")
        assert [u.name for u in store.list_users()] == ["alice"]

    def test_tokens(self, store: BudgetStore) -> None:
        store.add_user(User(name="alice"))
        with pytest.raises(NotFound):
            store.add_token("nobody", "h0")
        store.add_token("alice", "h1")
        store.add_token("alice", "h2")
        assert _same(store.user_for_token("h1"), User(name="alice"))
        assert store.user_for_token("unknown") is None
        assert store.revoke_tokens("alice") == 2
        assert store.revoke_tokens("alice") == 0
        assert store.user_for_token("h2") is None

    def test_token_lifecycle(self, store: BudgetStore) -> None:
        store.add_user(User(name="alice"))
        store.add_user(User(name="bob"))
        first = store.add_token("alice", "h1")
        later = datetime.now(UTC) + timedelta(days=90)
        second = store.add_token("alice", "h2", expires_at=later)
        assert first != second and first.startswith("tok_")
        tokens = store.list_tokens("alice")
        assert [t.id for t in tokens] == [first, second]
        assert tokens[0].expires_at is None and tokens[0].created_at is not None
        assert abs((tokens[1].expires_at or later) - later) < timedelta(milliseconds=1)
        assert tokens[0].last_used_at is None
        assert "h1" not in json.dumps([t.view() for t in tokens])  # ids and times, never hashes
        assert _same(store.user_for_token("h1"), User(name="alice"))
        assert store.list_tokens("alice")[0].last_used_at is not None
        with pytest.raises(NotFound):
            store.list_tokens("nobody")
        with pytest.raises(NotFound):
            store.revoke_token("bob", first)  # another user's token id
        store.revoke_token("alice", first)
        assert store.user_for_token("h1") is None
        assert _same(store.user_for_token("h2"), User(name="alice"))
        with pytest.raises(NotFound):
            store.revoke_token("alice", first)
        assert [t.id for t in store.list_tokens("alice")] == [second]

    def test_expired_tokens_authenticate_nobody(self, store: BudgetStore) -> None:
        store.add_user(User(name="alice"))
        store.add_token("alice", "old", expires_at=datetime.now(UTC) - timedelta(seconds=1))
        store.add_token("alice", "new", expires_at=datetime.now(UTC) + timedelta(hours=1))
        assert store.user_for_token("old") is None
        assert _same(store.user_for_token("new"), User(name="alice"))
        assert [t.expired() for t in store.list_tokens("alice")] == [True, False]

    def test_suspension_refuses_the_charge_itself(self, store: BudgetStore) -> None:
        seed(store)
        store.add_token("alice", "h1")
        before = store.set_suspended("alice", True)
        assert before.same_as(User(name="alice")) and store.get_user("alice").suspended
        # The token still names the user (so the server can answer 403 suspended, not 401).
        assert _same(store.user_for_token("h1"), User(name="alice", suspended=True))
        with pytest.raises(Suspended):
            store.charge(make_record(idempotency_key="k"))
        seed(store, dataset="later")  # a grant given while suspended is suspended too
        with pytest.raises(Suspended):
            store.charge(make_record(dataset="later"))
        grant = store.get_grant("alice", "ds")
        assert grant is not None and grant.spent == Budget.of(0, 0)
        assert store.list_archive(user="alice") == []
        assert store.set_suspended("alice", False).suspended
        store.charge(make_record(idempotency_key="k"))  # the key was never used
        store.charge(make_record(dataset="later"))
        with pytest.raises(NotFound):
            store.set_suspended("nobody", True)

    def test_remove_user_drops_tokens_and_grants_keeps_archive(self, store: BudgetStore) -> None:
        seed(store)
        store.add_token("alice", "h1")
        record = make_record()
        store.charge(record)
        store.remove_user("alice")
        assert store.user_for_token("h1") is None
        assert store.get_grant("alice", "ds") is None
        assert store.get_record(record.id).user == "alice"
        store.add_user(User(name="alice"))  # a new user of the same name starts without grants
        assert store.list_grants("alice") == []

    def test_a_reused_name_inherits_nothing(self, store: BudgetStore) -> None:
        seed(store)
        old_id = store.get_user("alice").id
        done = make_record(idempotency_key="k1")
        store.charge(done)
        store.complete(done.id, "success", result={"type": "value", "value": 1})
        pending = make_record(epsilon="0.2")
        store.charge(pending)
        assert store.get_record(done.id).user_id == old_id
        store.remove_user("alice")
        assert [r.id for r in store.list_archive(user="alice")] == [done.id, pending.id]
        seed(store)  # a new alice, granted the same dataset
        new_id = store.get_user("alice").id
        assert old_id and new_id and new_id != old_id
        assert store.find_by_idempotency_key("alice", "k1") is None
        assert store.list_archive(user="alice") == []
        assert store.list_archive_page(ArchiveFilter(user="alice")).records == []
        assert [r.id for r in store.list_archive_page(ArchiveFilter(user_id=old_id)).records] == [
            done.id, pending.id]
        grant = store.get_grant("alice", "ds")
        assert grant is not None and grant.spent == Budget.of(0, 0)
        store.release(pending.id)  # the old user's refund never lands on the new user's grant
        grant = store.get_grant("alice", "ds")
        assert grant is not None and grant.spent == Budget.of(0, 0)
        mine = make_record(idempotency_key="k1")  # the key is free for the new identity
        store.charge(mine)
        found = store.find_by_idempotency_key("alice", "k1")
        assert found is not None and found.id == mine.id and found.user_id == new_id

    def test_admin_log_appends_and_pages(self, store: BudgetStore) -> None:
        assert store.list_admin_events() == ([], None)
        events = [AdminEvent(actor="cli:root", action="grant.add", target=f"grant:u{i}/ds",
                             before={"spent": {"epsilon": str(i), "delta": "0"}} if i else None,
                             after={"reset_spent": bool(i % 2), "n": i}) for i in range(7)]
        for event in events:
            store.add_admin_event(event)
        page, cursor = store.list_admin_events(limit=3)
        seen = list(page)
        while cursor is not None:
            page, cursor = store.list_admin_events(cursor=cursor, limit=3)
            seen.extend(page)
        assert [e.id for e in seen] == [e.id for e in events]
        assert seen[3].before == {"spent": {"epsilon": "3", "delta": "0"}} and seen[0].before is None
        assert seen[3].after == {"reset_spent": True, "n": 3}
        assert abs(seen[6].at - events[6].at) < timedelta(milliseconds=1)
        with pytest.raises(InvalidRequest):
            store.list_admin_events(cursor="not-a-cursor")

    def test_revoked_grant_is_visible_on_request(self, store: BudgetStore) -> None:
        seed(store)
        store.charge(make_record(epsilon="0.3"))
        store.revoke("alice", "ds")
        grant = store.get_grant("alice", "ds", include_revoked=True)
        assert grant is not None and not grant.active and grant.spent == Budget.of("0.3", 0)

    def test_spend_survives_revoke_and_regrant(self, store: BudgetStore) -> None:
        seed(store)
        store.charge(make_record(epsilon="0.3"))
        store.revoke("alice", "ds")
        assert store.get_grant("alice", "ds") is None and store.list_grants("alice") == []
        with pytest.raises(NotFound):
            store.revoke("alice", "ds")
        with pytest.raises(AccessDenied):
            store.charge(make_record())
        with pytest.raises(NotFound):
            store.set_initial_budget("alice", "ds", Budget.of(5, 0))
        store.grant("alice", "ds", Budget.of("0.5", "0"))
        grant = store.get_grant("alice", "ds")
        assert grant is not None and grant.spent == Budget.of("0.3", 0)
        with pytest.raises(BudgetExceeded):
            store.charge(make_record(epsilon="0.3"))
        with pytest.raises(Conflict):
            store.grant("alice", "ds", Budget.of(1, 0), reset_spent=True)
        store.revoke("alice", "ds")
        store.grant("alice", "ds", Budget.of("0.5", "0"), reset_spent=True)
        grant = store.get_grant("alice", "ds")
        assert grant is not None and grant.spent == Budget.of(0, 0)

    def test_datasets(self, store: BudgetStore) -> None:
        store.put_dataset(_dataset("zeta"))
        store.put_dataset(_dataset("alpha"))
        assert store.get_dataset("zeta").model_copy(update={"id": None}) == _dataset("zeta")
        assert [d.name for d in store.list_datasets()] == ["alpha", "zeta"]
        with pytest.raises(Conflict):
            store.put_dataset(_dataset("zeta"))
        changed = _dataset("zeta").model_copy(update={"description": "new"})
        store.put_dataset(changed, replace=True)
        assert store.get_dataset("zeta").description == "new"
        with pytest.raises(NotFound):
            store.get_dataset("nope")
        with pytest.raises(NotFound):
            store.remove_dataset("nope")
        store.add_user(User(name="alice"))
        store.grant("alice", "zeta", Budget.of(1))
        store.remove_dataset("zeta")
        assert store.get_grant("alice", "zeta") is None
        assert [d.name for d in store.list_datasets()] == ["alpha"]

    def test_grants(self, store: BudgetStore) -> None:
        store.add_user(User(name="bob"))
        store.add_user(User(name="alice"))
        store.put_dataset(_dataset("ds"))
        store.put_dataset(_dataset("other"))
        with pytest.raises(NotFound):
            store.grant("nobody", "ds", Budget.of(1))
        with pytest.raises(NotFound):
            store.grant("alice", "nothing", Budget.of(1))
        store.grant("bob", "ds", Budget.of(2, "0.001"))
        store.grant("alice", "other", Budget.of(1))
        store.grant("alice", "ds", Budget.of("1.5", "0.00001"))
        with pytest.raises(Conflict):
            store.grant("alice", "ds", Budget.of(1))
        grant = store.get_grant("alice", "ds")
        assert grant is not None
        assert grant.initial == Budget.of("1.5", "0.00001")
        assert grant.spent.is_zero()
        assert store.get_grant("bob", "other") is None
        assert [(g.user, g.dataset) for g in store.list_grants()] == [
            ("alice", "ds"), ("alice", "other"), ("bob", "ds")]
        assert [g.dataset for g in store.list_grants("alice")] == ["ds", "other"]
        store.charge(make_record(epsilon="0.5"))
        store.set_initial_budget("alice", "ds", Budget.of(3, 0))
        grant = store.get_grant("alice", "ds")
        assert grant is not None and grant.initial == Budget.of(3, 0)
        assert grant.spent.epsilon == Decimal("0.5")
        with pytest.raises(NotFound):
            store.set_initial_budget("bob", "other", Budget.of(1))
        store.revoke("alice", "other")
        with pytest.raises(NotFound):
            store.revoke("alice", "other")

    # -- the charge ----------------------------------------------------------------------------
    def test_ten_tenths_spend_exactly_one(self, store: BudgetStore) -> None:
        seed(store, initial=Budget.of("1.0", 0))
        for i in range(10):
            remaining = store.charge(make_record(epsilon=0.1))
            assert remaining.epsilon == Decimal("1.0") - Decimal("0.1") * (i + 1)
        grant = store.get_grant("alice", "ds")
        assert grant is not None
        assert grant.remaining.epsilon == Decimal(0)
        assert grant.spent.epsilon == Decimal(1)
        with pytest.raises(BudgetExceeded) as info:
            store.charge(make_record(epsilon=0.1))
        assert "0.1" in info.value.message
        assert len(store.list_archive()) == 10
        assert store.get_grant("alice", "ds") == grant

    def test_delta_is_exact_too(self, store: BudgetStore) -> None:
        seed(store, initial=Budget.of(100, 1e-5))
        for _ in range(10):
            store.charge(make_record(epsilon=0, delta=1e-6))
        grant = store.get_grant("alice", "ds")
        assert grant is not None and grant.remaining.delta == Decimal(0)
        with pytest.raises(BudgetExceeded):
            store.charge(make_record(epsilon=0, delta=1e-7))
        store.charge(make_record(epsilon="0.1234567890123456789", delta=0))
        grant = store.get_grant("alice", "ds")
        assert grant is not None and grant.spent.epsilon == Decimal("0.1234567890123456789")

    def test_charge_returns_and_stores_remaining(self, store: BudgetStore) -> None:
        seed(store)
        record = make_record(epsilon="0.25", delta="0.000001")
        remaining = store.charge(record)
        assert remaining == Budget.of("0.75", "0.000009")
        assert record.remaining == remaining
        stored = store.get_record(record.id)
        assert stored.status == "pending" and stored.remaining == remaining
        assert stored.cost == Budget.of("0.25", "0.000001")
        assert stored.request == record.request
        assert stored.created_at == record.created_at

    def test_charge_without_grant_denied_alike(self, store: BudgetStore) -> None:
        seed(store)
        store.put_dataset(_dataset("secret"))
        messages = []
        for name in ("secret", "ghost"):
            with pytest.raises(AccessDenied) as info:
                store.charge(make_record(dataset=name))
            messages.append(info.value.message.replace(name, "X"))
        assert messages[0] == messages[1]
        assert store.list_archive() == []

    def test_idempotency_key_unique_per_user(self, store: BudgetStore) -> None:
        seed(store)
        seed(store, user="bob")
        first = make_record(idempotency_key="k1")
        store.charge(first)
        with pytest.raises(IdempotencyConflict):
            store.charge(make_record(idempotency_key="k1"))
        grant = store.get_grant("alice", "ds")
        assert grant is not None and grant.spent.epsilon == Decimal("0.1")  # rolled back
        store.charge(make_record(user="bob", idempotency_key="k1"))
        found = store.find_by_idempotency_key("alice", "k1")
        assert found is not None and found.id == first.id
        assert store.find_by_idempotency_key("alice", "k2") is None
        store.charge(make_record())  # records without a key never collide
        store.charge(make_record())
        assert len(store.list_archive(user="alice")) == 3

    def test_complete(self, store: BudgetStore) -> None:
        seed(store)
        ok, bad = make_record(), make_record()
        store.charge(ok)
        store.charge(bad)
        result = {"type": "table", "columns": ["n"], "dtypes": ["int"], "rows": [[42]], "note": "ü"}
        store.complete(ok.id, "success", result=result)
        store.complete(bad.id, "failed", error={"code": "query_failed", "message": "failed"})
        got = store.get_record(ok.id)
        assert got.status == "success" and got.result == result and got.completed_at is not None
        got = store.get_record(bad.id)
        assert got.status == "failed" and got.error == {"code": "query_failed", "message": "failed"}
        store.complete(ok.id, "failed", error={"code": "x", "message": "late"})  # not pending: no-op
        assert store.get_record(ok.id).status == "success"
        with pytest.raises(NotFound):
            store.complete("0" * 32, "success", result=None)
        with pytest.raises(NotFound):
            store.get_record("0" * 32)

    def test_release_refunds_once(self, store: BudgetStore) -> None:
        seed(store)
        record = make_record(epsilon="0.3", delta="0.000002")
        store.charge(record)
        store.release(record.id)
        store.release(record.id)
        grant = store.get_grant("alice", "ds")
        assert grant is not None and grant.spent.is_zero()
        assert store.get_record(record.id).status == "released"
        done = make_record(epsilon="0.3")
        store.charge(done)
        store.complete(done.id, "success", result={"type": "value", "value": 1})
        store.release(done.id)  # not pending: nothing refunded
        grant = store.get_grant("alice", "ds")
        assert grant is not None and grant.spent.epsilon == Decimal("0.3")
        assert store.get_record(done.id).status == "success"

    def test_user_json_is_kept_verbatim(self, store: BudgetStore) -> None:
        seed(store)
        request = {"$where": "x", "a.b": [1, 2.5, None, True], "nested": {"$gt": {"k.k": "é"}}}
        record = make_record()
        record.request = request
        store.charge(record)
        store.complete(record.id, "success", result={"$set": {"a.b": 1}})
        got = store.get_record(record.id)
        assert got.request == request and got.result == {"$set": {"a.b": 1}}

    # -- the archive ---------------------------------------------------------------------------
    def test_archive_filters_and_order(self, store: BudgetStore) -> None:
        seed(store)
        seed(store, user="bob")
        seed(store, user="alice", dataset="other")
        base = datetime(2025, 1, 1, tzinfo=UTC)
        plan = [("alice", "ds", 3), ("bob", "ds", 1), ("alice", "other", 2), ("alice", "ds", 0)]
        ids = {}
        for user, dataset, minute in plan:
            record = make_record(user=user, dataset=dataset, created_at=base + timedelta(minutes=minute))
            store.charge(record)
            ids[minute] = record.id
        assert [r.id for r in store.list_archive()] == [ids[0], ids[1], ids[2], ids[3]]
        assert [r.id for r in store.list_archive(user="alice")] == [ids[0], ids[2], ids[3]]
        assert [r.id for r in store.list_archive(dataset="ds")] == [ids[0], ids[1], ids[3]]
        assert [r.id for r in store.list_archive(user="alice", dataset="other")] == [ids[2]]
        assert store.list_archive(user="carol") == []

    def test_pending_records(self, store: BudgetStore) -> None:
        seed(store)
        records = [make_record() for _ in range(3)]
        for r in records:
            store.charge(r)
        store.complete(records[0].id, "success", result=None)
        store.release(records[1].id)
        assert [r.id for r in store.pending_records()] == [records[2].id]

    # -- whole state ---------------------------------------------------------------------------
    def _populate(self, store: BudgetStore) -> None:
        seed(store)
        seed(store, user="bob", dataset="other")
        store.add_user(User(name="root", is_admin=True))
        store.add_token("alice", "hash-a")
        store.add_token("alice", "hash-a2", expires_at=datetime(2100, 1, 2, 3, 4, 5, tzinfo=UTC))
        store.add_token("root", "hash-r")
        store.add_user(User(name="sleeper"))
        store.set_suspended("sleeper", True)
        seed(store, user="bob", dataset="ds")
        store.charge(make_record(user="bob", epsilon="0.125"))
        store.revoke("bob", "ds")  # a revoked grant keeps its spend through a copy
        a = make_record(idempotency_key="key")
        store.charge(a)
        store.complete(a.id, "success", result={"type": "value", "value": 3.25})
        b = make_record(user="bob", dataset="other", epsilon="0.2")
        store.charge(b)
        store.charge(make_record(epsilon="0.05"))

    def test_export_import_round_trip(self, store: BudgetStore,
                                      second_store_spec: StoreSpec | None) -> None:
        if second_store_spec is None:
            pytest.skip("no second_store_spec fixture and none could be derived")
        self._populate(store)
        state = store.export_state()
        text = json.dumps(state)  # JSON-safe
        spent = state["grants"][0]["spent"]
        assert (Decimal(spent["epsilon"]), Decimal(spent["delta"])) == (Decimal("0.15"), 0)
        other = build_store(second_store_spec, create=True)
        try:
            with pytest.raises(InvalidRequest):
                other.import_state({"users": [{"nope": 1}]})
            other.import_state(json.loads(text))
            assert other.export_state() == state
            assert _same(other.user_for_token("hash-r"), User(name="root", is_admin=True))
            assert other.pending_records() == store.pending_records()
            with pytest.raises(IdempotencyConflict):
                other.charge(make_record(idempotency_key="key"))
            with pytest.raises(Conflict):
                other.import_state(state)
        finally:
            other.close()

    def test_state_survives_reopen(self, store: BudgetStore, store_spec: StoreSpec) -> None:
        self._populate(store)
        before = store.export_state()
        store.close()
        reopened = build_store(store_spec)
        try:
            assert reopened.export_state() == before
            reopened.charge(make_record(epsilon="0.85"))
            with pytest.raises(BudgetExceeded):
                reopened.charge(make_record(epsilon="0.01"))
        finally:
            reopened.close()

    # -- concurrency ---------------------------------------------------------------------------
    def test_concurrent_spenders_across_processes(self, store: BudgetStore,
                                                  store_spec: StoreSpec) -> None:
        import multiprocessing

        seed(store, initial=Budget.of("1.0", "0.00001"))
        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(PROCESSES)
        queue = ctx.Queue()
        procs = [ctx.Process(target=_spend_worker, args=(store_spec, SPENDERS // PROCESSES, barrier, queue))
                 for _ in range(PROCESSES)]
        for p in procs:
            p.start()
        outcomes: list[tuple[str, str]] = []
        try:
            for _ in procs:
                outcomes.extend(queue.get(timeout=120))
        finally:
            for p in procs:
                p.join(timeout=30)
                if p.is_alive():
                    p.kill()
        errors = [o for o in outcomes if o[0] == "error"]
        assert not errors, errors[:3]
        assert len(outcomes) == SPENDERS
        ok = [o[1] for o in outcomes if o[0] == "ok"]
        assert len(ok) == 10
        remaining = sorted(Decimal(v.split("|")[0]) for v in ok)
        assert remaining == [Decimal("0.1") * i for i in range(10)]  # each step seen exactly once
        grant = store.get_grant("alice", "ds")
        assert grant is not None
        archived = store.list_archive(user="alice", dataset="ds")
        assert len(archived) == 10
        assert grant.spent == sum((r.cost for r in archived), Budget.of(0, 0))
        assert grant.remaining.epsilon == 0 and grant.remaining.delta >= 0

    # -- archive pages ---------------------------------------------------------------------------
    def test_archive_pages_with_cursor_and_filters(self, store: BudgetStore) -> None:
        seed(store, initial=Budget.of("10", "0.001"))
        seed(store, user="bob")
        made = []
        for i in range(7):
            record = make_record(epsilon="0.1", engine="opendp" if i % 3 == 0 else "smartnoise_sql")
            store.charge(record)
            if i % 2 == 0:
                store.complete(record.id, "success", result={"type": "value", "value": i})
            made.append(record.id)
        store.charge(make_record(user="bob"))
        where = ArchiveFilter(user="alice", dataset="ds")
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = store.list_archive_page(where, cursor=cursor, limit=3)
            assert len(page.records) <= 3
            seen.extend(r.id for r in page.records)
            pages += 1
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
            if pages == 1:  # a record archived meanwhile shows up on a later page
                late = make_record()
                store.charge(late)
                made.append(late.id)
        assert seen == made and pages == 3
        assert [r.id for r in store.list_archive_page(where, limit=1000).records] == made
        done = store.list_archive_page(ArchiveFilter(user="alice", status="success")).records
        assert [r.id for r in done] == made[0:7:2]
        opendp = store.list_archive_page(ArchiveFilter(user="alice", engine="opendp")).records
        assert [r.id for r in opendp] == [made[0], made[3], made[6]]
        assert {r.user for r in store.list_archive_page(ArchiveFilter()).records} == {"alice", "bob"}
        records = store.list_archive(user="alice")
        middle = records[3].created_at
        later = store.list_archive_page(ArchiveFilter(user="alice", since=middle)).records
        assert [r.id for r in later] == [r.id for r in records if r.created_at >= middle]
        earlier = store.list_archive_page(ArchiveFilter(user="alice", until=middle)).records
        assert [r.id for r in earlier] == [r.id for r in records if r.created_at < middle]
        with pytest.raises(InvalidRequest, match="cursor"):
            store.list_archive_page(where, cursor="not-a-cursor")

    # -- crash points ----------------------------------------------------------------------------
    @pytest.mark.parametrize("outcome", ["success", "failed", "release"])
    def test_crash_between_every_two_store_operations(self, store: BudgetStore,
                                                      store_spec: StoreSpec, outcome: str) -> None:
        """Kill the "process" at every step of charge + complete/release, restart, recover.

        After each restart: spent equals the sum of the archive exactly, no key is charged twice,
        and a retry with the same key gets a final answer (replayed, or charged once if the first
        attempt left nothing).
        """
        seed(store, initial=Budget.of("100", "0.001"))
        steps: list[str] = []
        store.fault_hook = steps.append
        _lifecycle(store, make_record(idempotency_key=f"probe-{outcome}"), outcome)
        store.fault_hook = None
        assert steps, "the store reports no steps to its fault_hook"
        current = store
        try:
            for i, step in enumerate(steps):
                key = f"{outcome}-{i}"
                first = make_record(epsilon="0.125", idempotency_key=key,
                                    request={"sql": "SELECT COUNT(*) FROM t", "step": step})
                before = current.get_grant("alice", "ds")
                assert before is not None
                current.fault_hook = _crash_at(step)
                with pytest.raises(SimulatedCrash):
                    _lifecycle(current, first, outcome)
                current.fault_hook = None
                # Another server sharing the store: if the charge landed, the key finds its record.
                other = build_store(store_spec)
                try:
                    during = other.get_grant("alice", "ds")
                    assert during is not None
                    if during.spent != before.spent:
                        seen = other.find_by_idempotency_key("alice", key)
                        assert seen is not None and seen.request == first.request, step
                finally:
                    other.close()
                # Restart: the dead process's store is abandoned, a new one recovers.
                current.close()
                current = build_store(store_spec)
                current.recover(grace_seconds=0)
                found = current.find_by_idempotency_key("alice", key)
                if found is None:  # nothing was charged: the retry runs (and is charged once)
                    grant = current.get_grant("alice", "ds")
                    assert grant is not None and grant.spent == before.spent, step
                    _lifecycle(current, first.model_copy(update={"id": make_record().id}), outcome)
                    found = current.find_by_idempotency_key("alice", key)
                assert found is not None, step
                assert found.status in ("success", "failed", "released"), (step, found.status)
                assert found.request == first.request, step
                if found.status == "failed" and found.error is not None:
                    assert found.error.get("code") in ("query_failed", "charged_failure"), found.error
                grant = current.get_grant("alice", "ds")
                assert grant is not None
                assert grant.spent == _archived_spend(current, "alice", "ds"), step
                keyed = [r for r in current.list_archive(user="alice") if r.idempotency_key == key]
                assert len(keyed) == 1, step
                assert current.pending_records() == [], step
        finally:
            current.fault_hook = None
            if current is not store:
                current.close()

    # -- owners of pending charges ------------------------------------------------------------------
    def test_a_live_owners_pending_record_is_never_touched(self, store: BudgetStore,
                                                            store_spec: StoreSpec) -> None:
        """However old, and whatever the grace: recovery and heartbeats leave it pending."""
        seed(store)
        record = make_record(idempotency_key="live")
        store.charge(record)
        other = build_store(store_spec)
        try:
            assert other.owner_id is not None and other.owner_id != store.owner_id
            other.recover(grace_seconds=0)
            other.heartbeat()
            store.heartbeat()
            found = other.find_by_idempotency_key("alice", "live")
            assert found is not None and found.status == "pending"
        finally:
            other.close()
        store.complete(record.id, "success", result={"type": "value", "value": 1})
        assert store.get_record(record.id).status == "success"

    def test_a_killed_owners_records_are_resolved_by_a_live_process(
            self, store: BudgetStore, store_spec: StoreSpec) -> None:
        """kill -9 of a real process holding pending charges: a live process resolves them at
        once (no grace wait), on a same-key retry and at its heartbeat; the charge stays."""
        seed(store)
        store.charge(make_record(idempotency_key="mine"))  # this live owner's own pending query
        _charge_and_die(store_spec, "killed-retried")
        _charge_and_die(store_spec, "killed-idle")
        found = store.find_by_idempotency_key("alice", "killed-retried")
        assert found is not None and found.status == "failed", found
        assert found.error is not None and found.error["code"] == "charged_failure"
        assert found.request == make_record().request
        assert store.heartbeat() >= 1
        idle = store.find_by_idempotency_key("alice", "killed-idle")
        assert idle is not None and idle.status == "failed"
        mine = store.find_by_idempotency_key("alice", "mine")
        assert mine is not None and mine.status == "pending"
        grant = store.get_grant("alice", "ds")
        assert grant is not None and grant.spent.epsilon == Decimal("0.3")
        assert grant.spent == _archived_spend(store, "alice", "ds")

    def test_errors_are_lomas_errors(self, store: BudgetStore) -> None:
        with pytest.raises(LomasError):
            store.charge(make_record(user="ghost"))
