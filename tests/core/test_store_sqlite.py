"""The built-in sqlite store: the shared store contract plus sqlite-specific behaviour."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from lomas_core.budget import Budget
from lomas_core.config import Config, PluginConfig
from lomas_core.errors import ConfigError, InvalidRequest, StoreUnavailable
from lomas_core.models import User
from lomas_core.plugins import make_store
from lomas_core.stores.sqlite import SQLiteStore
from lomas_core.testing.store_contract import StoreContract, StoreSpec, make_record, seed


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    def store_spec(self, tmp_path: Path) -> StoreSpec:
        return ("sqlite", {"path": str(tmp_path / "s.db")})


def _store(tmp_path: Path, *, create: bool = True, **options: object) -> SQLiteStore:
    store = make_store(Config(store=PluginConfig(name="sqlite", options={"path": "s.db", **options}),
                              base_dir=str(tmp_path)), create=create)
    assert isinstance(store, SQLiteStore)
    return store


def test_relative_path_resolved_against_config_dir(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.close()
    assert (tmp_path / "s.db").exists()
    raw = sqlite3.connect(tmp_path / "s.db")
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


def test_budgets_stored_as_decimal_text(tmp_path: Path) -> None:
    store = _store(tmp_path)
    seed(store, initial=Budget.of("1.0", "0.00001"))
    store.charge(make_record(epsilon=0.1, delta=1e-6))
    store.close()
    raw = sqlite3.connect(tmp_path / "s.db")
    row = raw.execute("SELECT typeof(spent_eps), spent_eps, spent_delta, initial_delta "
                      "FROM grants").fetchone()
    raw.close()
    assert row == ("text", "0.1", "0.000001", "0.00001")


@pytest.mark.parametrize("options", [{"path": ""}, {"path": ":memory:"}, {"path": 3},
                                     {"path": "s.db", "colour": "red"},
                                     {"path": "s.db", "busy_timeout_seconds": 0},
                                     {"path": "missing-dir/s.db"}])
def test_bad_options_refused(tmp_path: Path, options: dict[str, object]) -> None:
    config = Config(store=PluginConfig(name="sqlite", options=options), base_dir=str(tmp_path))
    with pytest.raises(ConfigError):
        make_store(config)


def test_not_a_database_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "s.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError) as info:
        _store(tmp_path)
    assert "s.db" in info.value.message


def test_locked_database_is_store_unavailable(tmp_path: Path) -> None:
    store = _store(tmp_path, busy_timeout_seconds=0.2)
    seed(store)
    blocker = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailable) as info:
            store.charge(make_record())
        assert "locked" not in info.value.message  # no library text for researchers
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    grant = store.get_grant("alice", "ds")
    assert grant is not None and grant.spent.is_zero()
    store.charge(make_record())
    store.close()


def test_negative_cost_refused(tmp_path: Path) -> None:
    store = _store(tmp_path)
    seed(store)
    record = make_record()
    record.cost = Budget(Decimal("-0.5"), Decimal(0))  # bypasses Budget.of's validation
    with pytest.raises(InvalidRequest):
        store.charge(record)
    grant = store.get_grant("alice", "ds")
    assert grant is not None and grant.spent.is_zero()
    store.close()


def test_closed_store_is_unavailable(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.close()
    with pytest.raises(StoreUnavailable):
        store.add_user(User(name="alice"))
    with pytest.raises(StoreUnavailable):
        store.ping()


def test_the_sqlite_entry_point_names_the_store_class() -> None:
    from lomas_core.plugins import load_classes

    assert load_classes("store", ["sqlite"]) == {"sqlite": SQLiteStore}


def test_start_up_finishes_queries_whose_process_died(tmp_path: Path) -> None:
    store = _store(tmp_path)
    seed(store)
    record = make_record(idempotency_key="k")
    store.charge(record)  # ... and the store is closed while the query runs
    store.close()
    young = _store(tmp_path)  # another process starting now: the query may still be running
    assert young.get_record(record.id).status == "pending"
    young.close()
    restarted = _store(tmp_path, recovery_grace_seconds=0)
    found = restarted.find_by_idempotency_key("alice", "k")
    assert found is not None and found.status == "failed" and found.request == record.request
    assert found.error is not None and found.error["code"] == "charged_failure"
    grant = restarted.get_grant("alice", "ds")
    assert grant is not None and grant.spent.epsilon == Decimal("0.1")
    restarted.close()


def test_a_killed_owner_is_recognised_by_its_released_lock(tmp_path: Path) -> None:
    """kill -9 while a query runs: the next start finishes it at once, without the grace wait
    (so a same-key retry after a single server's restart gets its final answer)."""
    store = _store(tmp_path)
    seed(store)
    store.close()
    code = ("import os, sys; from lomas_core.stores.sqlite import SQLiteStore; "
            "from lomas_core.testing.store_contract import make_record; "
            f"s = SQLiteStore({str(tmp_path / 's.db')!r}); "
            "s.charge(make_record(idempotency_key='killed')); os.kill(os.getpid(), 9)")
    done = subprocess.run([sys.executable, "-c", code], check=False)
    assert done.returncode == -9
    alive = _store(tmp_path)
    alive.charge(make_record(idempotency_key="running"))  # a live owner's query is left alone
    restarted = _store(tmp_path)  # default grace of 600 s, yet no waiting
    found = restarted.find_by_idempotency_key("alice", "killed")
    assert found is not None and found.status == "failed"
    running = restarted.find_by_idempotency_key("alice", "running")
    assert running is not None and running.status == "pending"
    assert len(list((tmp_path / "s.db.owners").iterdir())) == 2  # the dead one's lock is gone
    restarted.close()
    alive.close()
    assert list((tmp_path / "s.db.owners").iterdir()) == []


@pytest.mark.parametrize("grace", [-1, "10", True, float("nan")])
def test_recovery_grace_is_validated(tmp_path: Path, grace: object) -> None:
    with pytest.raises(ConfigError, match="recovery_grace_seconds"):
        _store(tmp_path, recovery_grace_seconds=grace)


def _populated(tmp_path: Path) -> Path:
    store = _store(tmp_path)
    seed(store)
    store.charge(make_record())
    store.close()
    return tmp_path / "s.db"


def test_a_deleted_store_is_refused_not_recreated(tmp_path: Path) -> None:
    path = _populated(tmp_path)
    path.unlink()
    for extra in ("-wal", "-shm"):
        Path(f"{path}{extra}").unlink(missing_ok=True)
    with pytest.raises(ConfigError, match="does not exist.*lomas admin init"):
        _store(tmp_path, create=False)
    assert not path.exists()


def test_a_truncated_store_is_refused(tmp_path: Path) -> None:
    path = _populated(tmp_path)
    path.write_bytes(b"")
    for extra in ("-wal", "-shm"):
        Path(f"{path}{extra}").unlink(missing_ok=True)
    with pytest.raises(ConfigError, match=r"empty \(0 bytes\)"):
        _store(tmp_path, create=False)


def test_a_damaged_page_is_named_at_start_up(tmp_path: Path) -> None:
    store = _store(tmp_path)
    seed(store)
    for _ in range(200):  # enough rows for several pages
        store.charge(make_record(epsilon="0.000001"))
    store.close()
    path = tmp_path / "s.db"
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = raw.execute("PRAGMA page_size").fetchone()[0]
    raw.close()
    data = bytearray(path.read_bytes())
    assert len(data) > 4 * page_size
    data[3 * page_size + 8: 3 * page_size + 200] = b"\xff" * 192  # scribble over a b-tree page
    path.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="damaged"):
        _store(tmp_path, create=False)


def test_not_a_lomas_store_is_refused(tmp_path: Path) -> None:
    raw = sqlite3.connect(tmp_path / "s.db")
    raw.execute("CREATE TABLE other (x)")
    raw.close()
    with pytest.raises(ConfigError, match="not an initialised lomas store"):
        _store(tmp_path, create=False)


def test_backup_while_serving_is_a_consistent_store(tmp_path: Path) -> None:
    store = _store(tmp_path)
    seed(store)
    record = make_record()
    store.charge(record)  # pending: the backup keeps it charged
    target = tmp_path / "backup.db"
    assert "consistent copy" in store.backup(target)
    with pytest.raises(ConfigError, match="already exists"):
        store.backup(target)
    store.close()
    copy = SQLiteStore(target)
    try:
        grant = copy.get_grant("alice", "ds")
        assert grant is not None and grant.spent.epsilon == Decimal("0.1")
        # Restored, the query that was running has no process any more: finished, charge kept.
        assert copy.get_record(record.id).status == "failed"
    finally:
        copy.close()


def test_a_damaged_wal_tail_is_refused_not_silently_dropped(tmp_path: Path) -> None:
    """The issue's case: the last committed charge sits in a WAL frame that got damaged."""
    live = tmp_path / "live"
    live.mkdir()
    store = _store(live)
    seed(store)
    keep = sqlite3.connect(live / "s.db")  # keeps the WAL from being checkpointed away
    keep.execute("SELECT count(*) FROM meta").fetchall()  # really attached to the WAL
    store.charge(make_record())
    store.charge(make_record())
    copy = tmp_path / "copy"  # the files as a crash would leave them: the charge is the last write
    copy.mkdir()
    for suffix in ("", "-wal"):
        (copy / f"s.db{suffix}").write_bytes((live / f"s.db{suffix}").read_bytes())
    store.close()
    keep.close()
    wal = copy / "s.db-wal"
    data = bytearray(wal.read_bytes())
    data[-100] ^= 0xFF  # one flipped bit pattern in the last committed frame
    wal.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="write-ahead log is damaged.*fails its checksum"):
        _store(copy, create=False)
    with pytest.raises(ConfigError, match="write-ahead log is damaged"):  # and it stays refused
        _store(copy, create=False)
    assert list(copy.glob("s.db-wal.damaged-*"))
    (copy / "s.db.damaged").unlink()  # the admin accepts the loss
    accepted = _store(copy, create=False)
    grant = accepted.get_grant("alice", "ds")
    assert grant is not None and grant.spent.epsilon == Decimal("0.1")  # the second charge is gone
    accepted.close()
    healthy = _store(live, create=False)  # an intact WAL is never flagged
    grant = healthy.get_grant("alice", "ds")
    assert grant is not None and grant.spent.epsilon == Decimal("0.2")
    healthy.close()
