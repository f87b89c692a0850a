"""SQLite plumbing for the ``sqlite`` store: schema, per-thread connections, transactions.

Budgets are stored as decimal TEXT and compared by deterministic SQL functions that do
:class:`~decimal.Decimal` arithmetic, so the check-and-update of a charge is one SQL statement
inside one ``BEGIN IMMEDIATE`` transaction. Connections use WAL, ``synchronous=FULL`` and a busy
timeout; each thread gets its own connection, and writers of one process also queue on a lock so
that only writers of *other* processes meet SQLite's busy handler.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal, localcontext
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: recovery then relies on the grace period
    fcntl = None  # type: ignore[assignment]

from lomas_core.budget import DECIMAL_CONTEXT
from lomas_core.errors import ConfigError, StoreUnavailable
from lomas_core.stores.sqlite_wal import wal_damage

__all__ = ["SCHEMA_VERSION", "SQLiteDatabase", "dec_add", "dec_le", "dec_sub_floor"]

log = logging.getLogger("lomas.stores.sqlite")

SCHEMA_VERSION = 5

_ADMIN_LOG = ("CREATE TABLE IF NOT EXISTS admin_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
              "id TEXT NOT NULL UNIQUE, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, "
              "target TEXT NOT NULL, before TEXT, after TEXT)")

#: Steps from one schema version to the next, applied in one transaction at start-up.
#: 1 -> 2: suspension and the token lifecycle (token id, created/expiry/last-used times).
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: ("ALTER TABLE users ADD COLUMN suspended INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE tokens ADD COLUMN id TEXT",
        "ALTER TABLE tokens ADD COLUMN created_at TEXT",
        "ALTER TABLE tokens ADD COLUMN expires_at TEXT",
        "ALTER TABLE tokens ADD COLUMN last_used_at TEXT",
        "UPDATE tokens SET id = 'tok_' || lower(hex(randomblob(8))) WHERE id IS NULL",
        "CREATE UNIQUE INDEX IF NOT EXISTS tokens_id ON tokens (id)"),
    # 2 -> 3: stable user identities. Existing records and grants belong to the current user of
    # their name (the only knowledge there is); records of users removed before the upgrade get
    # no id, so no later user of that name inherits them. Revoked grants keep their spend.
    2: ("ALTER TABLE users ADD COLUMN id TEXT",
        "UPDATE users SET id = 'usr_' || lower(hex(randomblob(8))) WHERE id IS NULL",
        "CREATE UNIQUE INDEX IF NOT EXISTS users_id ON users (id)",
        "ALTER TABLE grants ADD COLUMN user_id TEXT",
        "ALTER TABLE grants ADD COLUMN active INTEGER NOT NULL DEFAULT 1",
        "UPDATE grants SET user_id = (SELECT id FROM users WHERE users.name = grants.user)",
        "ALTER TABLE archive ADD COLUMN user_id TEXT",
        "UPDATE archive SET user_id = (SELECT id FROM users WHERE users.name = archive.user)",
        "DROP INDEX IF EXISTS archive_idempotency",
        "CREATE UNIQUE INDEX IF NOT EXISTS archive_idempotency_id ON archive (user_id, idempotency_key)",
        "CREATE INDEX IF NOT EXISTS archive_user_id ON archive (user_id, seq)"),
    # 3 -> 4: the admin audit log (append-only).
    3: (_ADMIN_LOG,),
    # 4 -> 5: stable dataset and grant identities. Grants and records belong to the dataset
    # currently holding their name (the only knowledge there is).
    4: ("ALTER TABLE datasets ADD COLUMN id TEXT",
        "UPDATE datasets SET id = 'ds_' || lower(hex(randomblob(8))) WHERE id IS NULL",
        "CREATE UNIQUE INDEX IF NOT EXISTS datasets_id ON datasets (id)",
        "ALTER TABLE grants ADD COLUMN id TEXT",
        "ALTER TABLE grants ADD COLUMN dataset_id TEXT",
        "UPDATE grants SET id = 'grt_' || lower(hex(randomblob(8))), "
        "dataset_id = (SELECT id FROM datasets WHERE datasets.name = grants.dataset)",
        "CREATE UNIQUE INDEX IF NOT EXISTS grants_id ON grants (id)",
        "ALTER TABLE archive ADD COLUMN dataset_id TEXT",
        "UPDATE archive SET dataset_id = (SELECT id FROM datasets WHERE datasets.name = archive.dataset)"),
}

#: sqlite error texts that mean the file is damaged, not busy.
_DAMAGE = re.compile(r"malformed|not a database|corrupt|disk I/O error", re.IGNORECASE)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, is_admin INTEGER NOT NULL DEFAULT 0,
    suspended INTEGER NOT NULL DEFAULT 0, id TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS users_id ON users (id);
CREATE TABLE IF NOT EXISTS tokens (hash TEXT PRIMARY KEY, user TEXT NOT NULL, id TEXT,
    created_at TEXT, expires_at TEXT, last_used_at TEXT);
CREATE INDEX IF NOT EXISTS tokens_user ON tokens (user);
CREATE UNIQUE INDEX IF NOT EXISTS tokens_id ON tokens (id);
CREATE TABLE IF NOT EXISTS datasets (name TEXT PRIMARY KEY, description TEXT NOT NULL, id TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS datasets_id ON datasets (id);
CREATE TABLE IF NOT EXISTS grants (
    user TEXT NOT NULL, dataset TEXT NOT NULL,
    initial_eps TEXT NOT NULL, initial_delta TEXT NOT NULL,
    spent_eps TEXT NOT NULL, spent_delta TEXT NOT NULL,
    user_id TEXT, active INTEGER NOT NULL DEFAULT 1, id TEXT, dataset_id TEXT,
    PRIMARY KEY (user, dataset));
CREATE UNIQUE INDEX IF NOT EXISTS grants_id ON grants (id);
CREATE TABLE IF NOT EXISTS archive (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    user TEXT NOT NULL, dataset TEXT NOT NULL, engine TEXT NOT NULL,
    request TEXT NOT NULL,
    cost_eps TEXT NOT NULL, cost_delta TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL, completed_at TEXT,
    result TEXT, error TEXT,
    idempotency_key TEXT,
    remaining_eps TEXT, remaining_delta TEXT, user_id TEXT, dataset_id TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS archive_idempotency_id ON archive (user_id, idempotency_key);
CREATE INDEX IF NOT EXISTS archive_user_id ON archive (user_id, seq);
CREATE INDEX IF NOT EXISTS archive_order ON archive (created_at, seq);
CREATE INDEX IF NOT EXISTS archive_status ON archive (status);
""" + _ADMIN_LOG + ";\n"


def dec_add(a: str, b: str) -> str:
    """SQL ``dec_add(a, b)``: exact decimal sum as text."""
    with localcontext(DECIMAL_CONTEXT):
        return str(Decimal(a) + Decimal(b))


def dec_sub_floor(a: str, b: str) -> str:
    """SQL ``dec_sub_floor(a, b)``: exact ``a - b``, never below zero.

    A refund can meet a grant that was revoked and granted again (spent restarted at zero); the
    floor keeps ``spent`` meaningful in that case.
    """
    with localcontext(DECIMAL_CONTEXT):
        result = Decimal(a) - Decimal(b)
    return str(result) if result > 0 else "0"


def dec_le(a: str, b: str) -> int:
    """SQL ``dec_le(a, b)``: 1 when ``a <= b`` as decimals."""
    return int(Decimal(a) <= Decimal(b))


class SQLiteDatabase:
    """One SQLite file shared by threads and processes."""

    def __init__(self, path: Path, *, busy_timeout: float = 30.0, create: bool = False) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False
        self._check_wal()
        if create:
            self._create_schema()
        else:
            self._check_existing()
        self._check_integrity()
        self._migrate()
        self._ensure_owners_table()
        self.owner = uuid.uuid4().hex
        self._owner_pid = os.getpid()
        self._owner_dir = Path(f"{self.path}.owners")
        self._owner_fd = self._hold_owner_lock()

    # -- which process owns a pending query ----------------------------------------------------
    def _ensure_owners_table(self) -> None:
        """``owners`` maps a pending query to the process answering it (additive, no migration)."""
        try:
            conn = self._open()
            try:
                conn.execute("CREATE TABLE IF NOT EXISTS owners "
                             "(query_id TEXT PRIMARY KEY, owner TEXT NOT NULL)")
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise ConfigError(f"sqlite store {self.path} cannot be opened: {exc}") from None

    def _hold_owner_lock(self) -> int | None:
        """Hold an exclusive lock on ``<store>.owners/<owner>.lock`` while this object lives: the
        kernel drops it when the process dies, which tells recovery the owner is gone."""
        if fcntl is None:
            return None
        try:
            self._owner_dir.mkdir(exist_ok=True)
            fd = os.open(self._owner_dir / f"{self.owner}.lock", os.O_CREAT | os.O_RDWR, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            log.warning("sqlite store %s: no owner lock (%s); recovery waits for the grace period",
                        self.path, exc)
            return None
        return fd

    def owner_alive(self, owner: str) -> bool:
        """Whether the process that owns ``owner`` still runs (same host; True when unknowable)."""
        if owner == self.owner:
            return True
        if fcntl is None or self._owner_fd is None or not all(c in "0123456789abcdef" for c in owner):
            return True
        lock = self._owner_dir / f"{owner}.lock"
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            return False  # its process closed the store: nothing of it still runs
        except OSError:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True  # locked: alive
        finally:
            os.close(fd)
        lock.unlink(missing_ok=True)  # a dead owner's leftover
        return False

    # -- connections ---------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), timeout=self.busy_timeout, isolation_level=None,
                               check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        conn.create_function("dec_add", 2, dec_add, deterministic=True)
        conn.create_function("dec_sub_floor", 2, dec_sub_floor, deterministic=True)
        conn.create_function("dec_le", 2, dec_le, deterministic=True)
        return conn

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        if self._closed:
            raise StoreUnavailable("The budget store is closed.")
        if os.getpid() != self._pid:  # forked: never share a parent's connections
            self._local = threading.local()
            self._conns = []
            self._pid = os.getpid()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._guard_open()
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _guard_open(self) -> sqlite3.Connection:
        try:
            return self._open()
        except sqlite3.Error as exc:
            log.error("sqlite store %s cannot be opened: %s", self.path, exc)
            raise StoreUnavailable("The budget store cannot be reached; nothing was charged.") from None

    def _check_existing(self) -> None:
        """Refuse a store that is missing, empty or not a lomas store: never create one here."""
        where = f"sqlite store {self.path}"
        hint = ("restore it from a backup (lomas admin backup), or create a new, empty store "
                "explicitly with `lomas admin init`")
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            raise ConfigError(f"{where} does not exist; {hint}") from None
        except OSError as exc:
            raise ConfigError(f"{where} cannot be read: {exc.strerror or type(exc).__name__}") from None
        if size == 0:
            raise ConfigError(f"{where} is empty (0 bytes): it was truncated or never initialised; "
                              f"{hint}")
        try:
            conn = self._open()
            try:
                tables = {r[0] for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
                row = (conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                       if "meta" in tables else None)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise ConfigError(f"{where} is damaged or not an SQLite database ({exc}); {hint}") from None
        missing = {"meta", "users", "tokens", "datasets", "grants", "archive"} - tables
        if row is None or missing:
            raise ConfigError(f"{where} is not an initialised lomas store (missing: "
                              f"{', '.join(sorted(missing)) or 'schema version'}); {hint}")
        if int(row[0]) > SCHEMA_VERSION:
            raise ConfigError(f"{where} has schema version {row[0]}; this lomas understands up to "
                              f"{SCHEMA_VERSION}")

    def _migrate(self) -> None:
        """Bring an older schema up to :data:`SCHEMA_VERSION`, in one ``BEGIN IMMEDIATE``
        transaction (re-reading the version inside it: another process may have done it)."""
        try:
            conn = self._open()
            try:
                conn.execute("BEGIN IMMEDIATE")
                version = int(conn.execute(
                    "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
                start = version
                while version < SCHEMA_VERSION:
                    for statement in _MIGRATIONS[version]:
                        conn.execute(statement)
                    version += 1
                conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
                conn.execute("COMMIT")
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise ConfigError(f"sqlite store {self.path}: migrating the schema failed ({exc}); "
                              "nothing was changed") from None
        if start != version:
            log.warning("sqlite store %s: schema migrated from version %d to %d", self.path, start,
                        version)

    def _check_wal(self) -> None:
        """Refuse a WAL holding damaged frames of its current generation (SQLite would drop them
        and every later transaction, silently). Read first without a lock, then confirmed under
        the write lock so that another process's write in progress is not mistaken for damage.
        The finding sticks (a ``.damaged`` note beside the store, a copy of the WAL) because
        closing the last connection lets SQLite checkpoint and delete the WAL."""
        note = Path(f"{self.path}.damaged")
        if note.exists():
            raise ConfigError(note.read_text(encoding="utf-8").strip())
        wal = Path(f"{self.path}-wal")
        if wal_damage(wal) is None:
            return
        kept = wal.with_name(f"{wal.name}.damaged-{os.getpid()}")
        shutil.copyfile(wal, kept)
        conn = None
        try:
            conn = self._open()
            conn.execute("BEGIN IMMEDIATE")
            damage = wal_damage(wal)
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            damage = f"{wal.name}: cannot be checked ({exc})"
        if damage is None:
            if conn is not None:
                conn.close()
            kept.unlink(missing_ok=True)  # a write in progress, not damage
            return
        message = (f"sqlite store {self.path}: its write-ahead log is damaged ({damage}); SQLite "
                   f"drops the transactions from there on, so charges may be missing. A copy of the "
                   f"log is at {kept}. Restore the store from a backup; to accept the loss instead, "
                   f"delete {note}")
        note.write_text(message + "\n", encoding="utf-8")
        if conn is not None:
            conn.close()
        raise ConfigError(message)

    def _check_integrity(self) -> None:
        """``PRAGMA quick_check`` at start-up: a damaged file is named, not served."""
        try:
            conn = self._open()
            try:
                problems = [r[0] for r in conn.execute("PRAGMA quick_check(5)")]
            finally:
                conn.close()
        except sqlite3.Error as exc:
            problems = [str(exc)]
        if problems != ["ok"]:
            raise ConfigError(f"sqlite store {self.path} is damaged (PRAGMA quick_check: "
                              f"{'; '.join(problems)}); restore it from a backup (lomas admin backup)")

    def backup(self, target: Path) -> None:
        """A consistent copy of the whole store at ``target`` while it serves (SQLite online backup)."""
        if target.exists():
            raise ConfigError(f"backup target {target} already exists; choose a new file")
        source = self.connection()
        dest = sqlite3.connect(str(target))
        try:
            with self._translate(source):
                source.backup(dest, pages=1024)
            check = dest.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            dest.close()
        if check != "ok":
            raise StoreUnavailable(f"the backup at {target} failed its integrity check: {check}")

    def _create_schema(self) -> None:
        try:
            conn = self._open()
            try:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise ConfigError(f"sqlite store {self.path}: cannot switch to WAL mode ({mode})")
                conn.execute("BEGIN IMMEDIATE")
                known = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                     "AND name = 'meta'").fetchone()
                if known is None:  # an existing store keeps its schema; _migrate upgrades it
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                             (str(SCHEMA_VERSION),))
                version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
                conn.execute("COMMIT")
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise ConfigError(f"sqlite store {self.path} cannot be opened: {exc}") from None
        if int(version) > SCHEMA_VERSION:
            raise ConfigError(f"sqlite store {self.path} has schema version {version}; this lomas "
                              f"understands up to {SCHEMA_VERSION}")

    # -- transactions --------------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on any error.

        sqlite errors other than constraint violations become StoreUnavailable.
        """
        if not self._write_lock.acquire(timeout=self.busy_timeout):
            raise StoreUnavailable("The budget store is busy; nothing was charged. Retry later.")
        try:
            conn = self.connection()
            with self._translate(conn):
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
        finally:
            self._write_lock.release()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every statement inside sees the same snapshot."""
        conn = self.connection()
        with self._translate(conn):
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

    @contextmanager
    def _translate(self, conn: sqlite3.Connection) -> Iterator[None]:
        try:
            yield
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            log.error("sqlite store %s failed: %s: %s", self.path, type(exc).__name__, exc)
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if isinstance(exc, sqlite3.DatabaseError) and _DAMAGE.search(str(exc)):
                log.critical("sqlite store %s is damaged (%s): restore it from a backup",
                             self.path, exc)
                raise StoreUnavailable("The budget store is damaged; nothing was charged. "
                                       "An administrator must restore it.") from None
            raise StoreUnavailable("The budget store is busy or unreachable; nothing was charged.") \
                from None

    def execute(self, sql: str, params: tuple[object, ...] | dict[str, object] = ()) -> list[sqlite3.Row]:
        """One autocommit read statement; all rows."""
        conn = self.connection()
        with self._translate(conn):
            return list(conn.execute(sql, params).fetchall())

    def close(self) -> None:
        """Close every connection this object opened and release the owner lock."""
        if self._closed:
            return
        if self._owner_fd is not None and os.getpid() == self._owner_pid:
            # A clean close hands this process's pending queries over to the grace period (an
            # embedding program may reopen the store and finish them); only a process that dies
            # holding its lock makes them recoverable at once.
            try:
                with self.write() as c:
                    c.execute("DELETE FROM owners WHERE owner = ?", (self.owner,))
            except Exception:  # noqa: BLE001 - best effort at shutdown
                log.debug("sqlite store %s: could not release owned queries", self.path)
            try:
                (self._owner_dir / f"{self.owner}.lock").unlink(missing_ok=True)
                os.close(self._owner_fd)
            except OSError:  # best effort
                pass
            self._owner_fd = None
        self._closed = True
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:  # closing is best effort
                pass
