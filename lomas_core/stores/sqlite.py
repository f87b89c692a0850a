"""The embedded ``sqlite`` budget store: one SQLite file, safe for many threads and processes.

Config::

    store: {name: sqlite, options: {path: ./lomas.db, busy_timeout_seconds: 30,
                                    token_last_used_seconds: 60}}

``path`` is relative to the config file's folder. Budgets are exact decimal text; the charge is one
conditional ``UPDATE`` plus the pending archive insert inside one ``BEGIN IMMEDIATE`` transaction
(see :mod:`lomas_core.stores.sqlite_db`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from pydantic import BaseModel, ConfigDict, Field

from lomas_core.admin_log import note_ids
from lomas_core.budget import Budget
from lomas_core.errors import (
    AccessDenied,
    BudgetExceeded,
    ChargedFailure,
    ConfigError,
    Conflict,
    IdempotencyConflict,
    InvalidRequest,
    NotFound,
    Suspended,
)
from lomas_core.models import (
    AdminEvent,
    ArchiveRecord,
    DatasetDescription,
    Grant,
    QueryStatus,
    TokenInfo,
    User,
    new_dataset_id,
    new_grant_id,
    new_token_id,
    new_user_id,
    utcnow,
)
from lomas_core.store import (
    MAX_PAGE,
    ArchiveFilter,
    ArchivePage,
    BudgetStore,
    decode_cursor,
    encode_cursor,
)
from lomas_core.stores.lease import LeaseKeeper
from lomas_core.stores.sqlite_db import SQLiteDatabase
from lomas_core.stores.sqlite_rows import (
    GRANT_COLUMNS,
    INSERT_RECORD,
    RECORD_COLUMNS,
    budget,
    dump_json,
    grant_from_row,
    load_json,
    record_from_row,
    record_params,
)
from lomas_core.stores.state import Token, build_state, format_time, parse_state, parse_time
from lomas_core.tokens import LAST_USED_SECONDS, LastUsed

if TYPE_CHECKING:
    from lomas_core.context import PluginContext

__all__ = ["INTERRUPTED", "SQLiteOptions", "SQLiteStore", "parse_options", "recovery_grace"]

log = logging.getLogger("lomas.stores.sqlite")

#: Records of "user :u": those of the current user of that name (by id), or, when no user has
#: that name any more, those archived under the name.
_USER_MATCH = ("(:u IS NULL OR user_id = (SELECT id FROM users WHERE name = :u) "
               "OR (user = :u AND NOT EXISTS (SELECT 1 FROM users WHERE name = :u)))")

_OPTIONS = {"path", "busy_timeout_seconds", "recovery_grace_seconds", "token_last_used_seconds"}

#: How often a live process looks for pending records of dead owners (once it has charged).
HEARTBEAT_SECONDS = 5.0

#: The error of a query whose server died while it ran (the charge stays).
INTERRUPTED = ChargedFailure("The server stopped while this query was being answered; "
                             "its cost stays charged.").to_dict()["error"]


def recovery_grace(options: Mapping[str, Any]) -> float:
    """``recovery_grace_seconds`` (default 600): pending records younger than this are left alone
    at start-up, since another process sharing the file may still be running them."""
    grace = options.get("recovery_grace_seconds", 600.0)
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or not 0 <= grace < float("inf"):
        raise ConfigError("sqlite store: 'recovery_grace_seconds' must be a number >= 0")
    return float(grace)


def parse_options(options: Mapping[str, Any], resolve: Any = Path) -> tuple[Path, float]:
    """Validate ``{"path": str, "busy_timeout_seconds": float}``; ConfigError on mistakes."""
    unknown = set(options) - _OPTIONS
    if unknown:
        raise ConfigError(f"sqlite store: unknown options {sorted(unknown)}; known: {sorted(_OPTIONS)}")
    raw = options.get("path")
    if not isinstance(raw, str) or not raw or raw == ":memory:" or raw.startswith("file:"):
        raise ConfigError("sqlite store: option 'path' must be a file path")
    timeout = options.get("busy_timeout_seconds", 30.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ConfigError("sqlite store: 'busy_timeout_seconds' must be a positive number")
    path = Path(resolve(raw))
    if not path.parent.is_dir():
        raise ConfigError(f"sqlite store: directory {path.parent} does not exist")
    return path, float(timeout)


class SQLiteOptions(BaseModel):
    """``store.options`` of the ``sqlite`` store."""

    model_config = ConfigDict(extra="forbid", strict=True)

    #: The database file, relative to the config file's folder.
    path: str
    busy_timeout_seconds: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    #: Pending records younger than this are left alone at start-up (another process sharing
    #: the file may still be running them).
    recovery_grace_seconds: float = Field(default=600.0, ge=0, allow_inf_nan=False)
    #: A token's last-used time is written at most this often, off the request path (0: always).
    token_last_used_seconds: float = Field(default=LAST_USED_SECONDS, ge=0, lt=10**7,
                                           allow_inf_nan=False)


class SQLiteStore(BudgetStore):
    """:class:`~lomas_core.store.BudgetStore` on one SQLite file."""

    Options: ClassVar[type[BaseModel]] = SQLiteOptions

    @classmethod
    def create(cls, options: SQLiteOptions, context: PluginContext) -> SQLiteStore:
        """Open (or, with ``context.create_store``, create) the file the options name."""
        path, timeout = parse_options({"path": options.path,
                                       "busy_timeout_seconds": options.busy_timeout_seconds},
                                      context.config.resolve_path)
        store = cls(path, busy_timeout=timeout, recovery_grace_seconds=options.recovery_grace_seconds,
                    create=context.create_store,
                    token_last_used_seconds=options.token_last_used_seconds)
        context.logger.info("sqlite store at %s", path)
        return store

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0,
                 recovery_grace_seconds: float = 600.0, create: bool = False,
                 token_last_used_seconds: float = LAST_USED_SECONDS) -> None:
        self.path = Path(path)
        self.recovery_grace_seconds = recovery_grace_seconds
        self.last_used = LastUsed(self._write_last_used, token_last_used_seconds)
        self.db = SQLiteDatabase(self.path, busy_timeout=busy_timeout, create=create)
        #: Its lock file in ``<store>.owners/`` is this process's lease (see sqlite_db.py).
        self.owner_id = self.db.owner
        self._keeper: LeaseKeeper | None = None
        self._keeper_lock = threading.Lock()
        self.recover()

    def recover(self, grace_seconds: float | None = None, *, only: str | None = None,
                owned_only: bool = False) -> int:
        """Mark pending records whose process died ``failed`` (charge kept); returns how many.

        A charge and its record are one transaction here, so a crash can only leave a pending
        record whose query never finished. Its owner is dead when it no longer holds its lock
        (the kernel drops it with the process); a record whose owner holds it is never touched.
        Records with no owner (older versions, or an owner that closed cleanly) are resolved
        once older than the grace. ``only`` limits the pass to one query id; ``owned_only`` to
        records with an owner (the small ``owners`` table: no scan of the archive).
        """
        grace = self.recovery_grace_seconds if grace_seconds is None else grace_seconds
        cutoff = format_time(utcnow() - timedelta(seconds=grace))
        if owned_only:
            rows = self.db.execute("SELECT query_id AS id, NULL AS created_at, owner FROM owners")
        else:
            rows = self.db.execute(
                "SELECT a.id, a.created_at, o.owner FROM archive a LEFT JOIN owners o "
                "ON o.query_id = a.id WHERE a.status = 'pending' AND (? IS NULL OR a.id = ?)",
                (only, only))
        alive: dict[str, bool] = {}
        for owner in {r["owner"] for r in rows if r["owner"] is not None}:
            alive[owner] = self.db.owner_alive(owner)
        dead = [r["id"] for r in rows
                if (r["owner"] is None and r["created_at"] is not None and r["created_at"] < cutoff)
                or (r["owner"] is not None and not alive[r["owner"]])]
        count = 0
        if dead:
            with self.db.write() as c:
                for qid in dead:
                    count += int(c.execute(
                        "UPDATE archive SET status = 'failed', error = ?, completed_at = ? "
                        "WHERE id = ? AND status = 'pending'",
                        (dump_json(INTERRUPTED), format_time(utcnow()), qid)).rowcount)
                    c.execute("DELETE FROM owners WHERE query_id = ?", (qid,))
        if count:
            log.warning("sqlite store %s: %d interrupted queries archived as failed (charged)",
                        self.path, count)
        return count

    def heartbeat(self) -> int:
        """The lease is the owner lock, held by the kernel: nothing to renew; resolves dead
        owners' records."""
        if not self.path.exists():  # never recreate a store file that was removed
            return 0
        return self.recover(owned_only=True)

    def _keep_alive(self) -> None:
        if self._keeper is None:
            with self._keeper_lock:
                if self._keeper is None:
                    self._keeper = LeaseKeeper(self.heartbeat, HEARTBEAT_SECONDS,
                                               "lomas-sqlite-lease").start()

    # -- users and tokens -------------------------------------------------------------------------
    @staticmethod
    def _user(row: sqlite3.Row) -> User:
        return User(name=row["name"], is_admin=bool(row["is_admin"]), suspended=bool(row["suspended"]),
                    id=row["id"])

    def _log(self, c: sqlite3.Connection, event: AdminEvent | None) -> None:
        """Write ``event`` in the transaction ``c`` of its change (both commit or neither)."""
        if event is None:
            return
        self._step("admin:changed")
        c.execute("INSERT INTO admin_log (id, at, actor, action, target, before, after) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?)",
                  (event.id, format_time(event.at), event.actor, event.action, event.target,
                   dump_json(event.before), dump_json(event.after)))

    def add_user(self, user: User, *, event: AdminEvent | None = None) -> None:
        uid = user.id or new_user_id()
        try:
            with self.db.write() as c:
                c.execute("INSERT INTO users (name, is_admin, suspended, id) VALUES (?, ?, ?, ?)",
                          (user.name, int(user.is_admin), int(user.suspended), uid))
                note_ids(event, id=uid)
                self._log(c, event)
        except sqlite3.IntegrityError:
            raise Conflict(f"user '{user.name}' already exists") from None

    def get_user(self, name: str) -> User:
        rows = self.db.execute("SELECT name, is_admin, suspended, id FROM users WHERE name = ?", (name,))
        if not rows:
            raise NotFound(f"user '{name}' does not exist")
        return self._user(rows[0])

    def list_users(self) -> list[User]:
        rows = self.db.execute("SELECT name, is_admin, suspended, id FROM users ORDER BY name")
        return [self._user(r) for r in rows]

    def remove_user(self, name: str, *, event: AdminEvent | None = None) -> None:
        with self.db.write() as c:
            if c.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 0:
                raise NotFound(f"user '{name}' does not exist")
            c.execute("DELETE FROM tokens WHERE user = ?", (name,))
            c.execute("DELETE FROM grants WHERE user = ?", (name,))
            self._log(c, event)

    def set_suspended(self, name: str, suspended: bool, *,
                      event: AdminEvent | None = None) -> User:
        with self.db.write() as c:
            row = c.execute("SELECT name, is_admin, suspended, id FROM users WHERE name = ?",
                            (name,)).fetchone()
            if row is None:
                raise NotFound(f"user '{name}' does not exist")
            c.execute("UPDATE users SET suspended = ? WHERE name = ?", (int(suspended), name))
            self._log(c, event)
        return self._user(row)

    def add_token(self, user: str, token_hash: str, *, expires_at: datetime | None = None,
                  token_id: str | None = None, event: AdminEvent | None = None) -> str:
        token_id = token_id or new_token_id()
        with self.db.write() as c:
            if c.execute("SELECT 1 FROM users WHERE name = ?", (user,)).fetchone() is None:
                raise NotFound(f"user '{user}' does not exist")
            try:
                c.execute("INSERT INTO tokens (hash, user, id, created_at, expires_at) "
                          "VALUES (?, ?, ?, ?, ?)",
                          (token_hash, user, token_id, format_time(utcnow()),
                           format_time(expires_at) if expires_at else None))
            except sqlite3.IntegrityError:
                raise Conflict("this token is already registered") from None
            self._log(c, event)
        return token_id

    def list_tokens(self, user: str) -> list[TokenInfo]:
        self.last_used.flush()
        with self.db.read() as c:
            if c.execute("SELECT 1 FROM users WHERE name = ?", (user,)).fetchone() is None:
                raise NotFound(f"user '{user}' does not exist")
            rows = c.execute("SELECT id, user, created_at, expires_at, last_used_at FROM tokens "
                             "WHERE user = ? ORDER BY created_at, id", (user,)).fetchall()
        return [TokenInfo(id=r["id"], user=r["user"],
                          **{k: parse_time(r[k]) if r[k] else None
                             for k in ("created_at", "expires_at", "last_used_at")}) for r in rows]

    def revoke_token(self, user: str, token_id: str, *, event: AdminEvent | None = None) -> None:
        with self.db.write() as c:
            if c.execute("DELETE FROM tokens WHERE user = ? AND id = ?", (user, token_id)).rowcount == 0:
                raise NotFound(f"user '{user}' has no token '{token_id[:40]}'")
            self._log(c, event)

    def revoke_tokens(self, user: str, *, event: AdminEvent | None = None) -> int:
        with self.db.write() as c:
            count = int(c.execute("DELETE FROM tokens WHERE user = ?", (user,)).rowcount)
            if event is not None and event.after is not None:
                event.after["count"] = count
            self._log(c, event)
        return count

    def user_for_token(self, token_hash: str) -> User | None:
        now = utcnow()
        rows = self.db.execute(
            "SELECT u.name, u.is_admin, u.suspended, u.id, t.last_used_at FROM tokens t "
            "JOIN users u ON u.name = t.user WHERE t.hash = ? "
            "AND (t.expires_at IS NULL OR t.expires_at > ?)", (token_hash, format_time(now)))
        if not rows:
            return None
        last = rows[0]["last_used_at"]
        self.last_used.touch(token_hash, parse_time(last) if last else None, now)  # no write here
        return self._user(rows[0])

    def _write_last_used(self, token_hash: str, when: datetime) -> None:
        stamp = format_time(when)
        with self.db.write() as c:
            c.execute("UPDATE tokens SET last_used_at = ? WHERE hash = ? "
                      "AND (last_used_at IS NULL OR last_used_at < ?)", (stamp, token_hash, stamp))

    # -- datasets -----------------------------------------------------------------------------------
    @staticmethod
    def _dataset(row: sqlite3.Row) -> DatasetDescription:
        return DatasetDescription.model_validate_json(row["description"]).model_copy(
            update={"id": row["id"]})

    def put_dataset(self, dataset: DatasetDescription, *, replace: bool = False,
                    event: AdminEvent | None = None) -> None:
        text = dataset.model_dump_json(exclude={"id"})
        with self.db.write() as c:
            try:
                # A replaced description keeps its dataset's id.
                c.execute("INSERT INTO datasets (name, description, id) VALUES (?, ?, ?)"
                          + (" ON CONFLICT (name) DO UPDATE SET description = excluded.description"
                             if replace else ""),
                          (dataset.name, text, dataset.id or new_dataset_id()))
            except sqlite3.IntegrityError:
                raise Conflict(f"dataset '{dataset.name}' already exists") from None
            row = c.execute("SELECT id FROM datasets WHERE name = ?", (dataset.name,)).fetchone()
            note_ids(event, id=row["id"])
            self._log(c, event)

    def get_dataset(self, name: str) -> DatasetDescription:
        rows = self.db.execute("SELECT description, id FROM datasets WHERE name = ?", (name,))
        if not rows:
            raise NotFound(f"dataset '{name}' does not exist")
        return self._dataset(rows[0])

    def list_datasets(self) -> list[DatasetDescription]:
        rows = self.db.execute("SELECT description, id FROM datasets ORDER BY name")
        return [self._dataset(r) for r in rows]

    def remove_dataset(self, name: str, *, event: AdminEvent | None = None) -> None:
        with self.db.write() as c:
            if c.execute("DELETE FROM datasets WHERE name = ?", (name,)).rowcount == 0:
                raise NotFound(f"dataset '{name}' does not exist")
            c.execute("DELETE FROM grants WHERE dataset = ?", (name,))
            self._log(c, event)

    # -- grants and budgets ------------------------------------------------------------------------
    def grant(self, user: str, dataset: str, initial: Budget, *, reset_spent: bool = False,
              event: AdminEvent | None = None) -> None:
        with self.db.write() as c:
            owner = c.execute("SELECT id FROM users WHERE name = ?", (user,)).fetchone()
            if owner is None:
                raise NotFound(f"user '{user}' does not exist")
            ds = c.execute("SELECT id FROM datasets WHERE name = ?", (dataset,)).fetchone()
            if ds is None:
                raise NotFound(f"dataset '{dataset}' does not exist")
            old = c.execute("SELECT active, id FROM grants WHERE user = ? AND dataset = ?",
                            (user, dataset)).fetchone()
            if old is not None and old["active"]:
                raise Conflict(f"user '{user}' already has a grant on dataset '{dataset}'")
            if old is None:
                gid = new_grant_id()
                c.execute(f"INSERT INTO grants ({GRANT_COLUMNS}, user_id) "
                          "VALUES (?, ?, ?, ?, '0', '0', 1, ?, ?, ?)",
                          (user, dataset, str(initial.epsilon), str(initial.delta), gid, ds["id"],
                           owner["id"]))
            else:
                # A re-grant: the pair's lifetime spend stays unless the admin resets it. (A
                # revoked grant has no query running here: charge, archive and release are one
                # transaction each, and a refund never takes spent below zero.)
                gid = old["id"]
                reset = ", spent_eps = '0', spent_delta = '0'" if reset_spent else ""
                c.execute(f"UPDATE grants SET initial_eps = ?, initial_delta = ?, active = 1{reset} "
                          "WHERE user = ? AND dataset = ?",
                          (str(initial.epsilon), str(initial.delta), user, dataset))
            note_ids(event, id=gid, dataset_id=ds["id"])
            self._log(c, event)

    def revoke(self, user: str, dataset: str, *, event: AdminEvent | None = None) -> None:
        with self.db.write() as c:
            if c.execute("UPDATE grants SET active = 0 WHERE user = ? AND dataset = ? AND active = 1",
                         (user, dataset)).rowcount == 0:
                raise NotFound(f"user '{user}' has no grant on dataset '{dataset}'")
            self._log(c, event)

    def set_initial_budget(self, user: str, dataset: str, initial: Budget, *,
                           event: AdminEvent | None = None) -> None:
        with self.db.write() as c:
            cur = c.execute("UPDATE grants SET initial_eps = ?, initial_delta = ? "
                            "WHERE user = ? AND dataset = ? AND active = 1",
                            (str(initial.epsilon), str(initial.delta), user, dataset))
            if cur.rowcount == 0:
                raise NotFound(f"user '{user}' has no grant on dataset '{dataset}'")
            self._log(c, event)

    def get_grant(self, user: str, dataset: str, *, include_revoked: bool = False) -> Grant | None:
        rows = self.db.execute(f"SELECT {GRANT_COLUMNS} FROM grants WHERE user = ? AND dataset = ? "
                               "AND (active = 1 OR ?)", (user, dataset, int(include_revoked)))
        return grant_from_row(rows[0]) if rows else None

    def list_grants(self, user: str | None = None) -> list[Grant]:
        if user is None:
            rows = self.db.execute(f"SELECT {GRANT_COLUMNS} FROM grants WHERE active = 1 "
                                   "ORDER BY user, dataset")
        else:
            rows = self.db.execute(f"SELECT {GRANT_COLUMNS} FROM grants WHERE user = ? AND active = 1 "
                                   "ORDER BY user, dataset", (user,))
        return [grant_from_row(r) for r in rows]

    # -- the charge and the archive ----------------------------------------------------------------
    def charge(self, record: ArchiveRecord) -> Budget:
        if not all(v.is_finite() and v >= 0 for v in (record.cost.epsilon, record.cost.delta)):
            raise InvalidRequest("a query's cost must be finite and non-negative")
        e, d = str(record.cost.epsilon), str(record.cost.delta)
        self._keep_alive()
        with self.db.write() as c:
            # The check and the update are this one statement, under the write lock of BEGIN IMMEDIATE.
            row = c.execute(
                "UPDATE grants SET spent_eps = dec_add(spent_eps, :e), "
                "spent_delta = dec_add(spent_delta, :d) "
                "WHERE user = :u AND dataset = :ds AND active = 1 "
                "AND dec_le(dec_add(spent_eps, :e), initial_eps) "
                "AND NOT EXISTS (SELECT 1 FROM users WHERE name = :u AND suspended = 1) "
                "AND dec_le(dec_add(spent_delta, :d), initial_delta) "
                "RETURNING initial_eps, initial_delta, spent_eps, spent_delta, user_id, dataset_id",
                {"e": e, "d": d, "u": record.user, "ds": record.dataset}).fetchone()
            if row is None:
                self._refuse(c, record)
            self._step("charge:charged")
            remaining = (budget(row["initial_eps"], row["initial_delta"])
                         - budget(row["spent_eps"], row["spent_delta"]))
            stored = record.model_copy(update={"status": "pending", "remaining": remaining,
                                               "completed_at": None, "result": None, "error": None,
                                               "user_id": row["user_id"],
                                               "dataset_id": row["dataset_id"]})
            try:
                c.execute(INSERT_RECORD, record_params(stored))
            except sqlite3.IntegrityError as exc:
                if "idempotency" in str(exc) or "idempotency_key" in str(exc):
                    raise IdempotencyConflict(
                        "this Idempotency-Key was already used for another request") from None
                raise Conflict(f"query id '{record.id}' already exists") from None
            c.execute("INSERT INTO owners (query_id, owner) VALUES (?, ?)", (record.id, self.db.owner))
            self._step("charge:recorded")
        self._step("charge:archived")
        record.status = "pending"
        record.remaining = remaining
        record.user_id = stored.user_id
        record.dataset_id = stored.dataset_id
        return remaining

    @staticmethod
    def _refuse(c: sqlite3.Connection, record: ArchiveRecord) -> NoReturn:
        if c.execute("SELECT 1 FROM users WHERE name = ? AND suspended = 1",
                     (record.user,)).fetchone() is not None:
            raise Suspended("your account is suspended; nothing was charged")
        row = c.execute(f"SELECT {GRANT_COLUMNS} FROM grants WHERE user = ? AND dataset = ? "
                        "AND active = 1", (record.user, record.dataset)).fetchone()
        if row is None:
            raise AccessDenied(f"you do not have access to dataset '{record.dataset}'")
        rem = grant_from_row(row).remaining
        raise BudgetExceeded(
            f"the query needs epsilon={record.cost.epsilon}, delta={record.cost.delta} but only "
            f"epsilon={rem.epsilon}, delta={rem.delta} remain; nothing was charged",
            needed=record.cost.as_strings(), remaining=rem.as_strings())

    def complete(self, query_id: str, status: QueryStatus, *, result: Any = None,
                 error: dict[str, Any] | None = None) -> None:
        if status not in ("success", "failed"):
            raise ValueError(f"complete() takes 'success' or 'failed', not {status!r}")
        with self.db.write() as c:
            cur = c.execute("UPDATE archive SET status = ?, result = ?, error = ?, completed_at = ? "
                            "WHERE id = ? AND status = 'pending'",
                            (status, dump_json(result), dump_json(error), format_time(utcnow()), query_id))
            if cur.rowcount == 0 and c.execute("SELECT 1 FROM archive WHERE id = ?",
                                               (query_id,)).fetchone() is None:
                raise NotFound(f"query '{query_id}' does not exist")
            c.execute("DELETE FROM owners WHERE query_id = ?", (query_id,))
            self._step("complete:marked")
        self._step("complete:committed")

    def release(self, query_id: str) -> None:
        with self.db.write() as c:
            row = c.execute("SELECT user, dataset, cost_eps, cost_delta, status, user_id FROM archive "
                            "WHERE id = ?",
                            (query_id,)).fetchone()
            if row is None:
                raise NotFound(f"query '{query_id}' does not exist")
            if row["status"] != "pending":
                return
            c.execute("UPDATE archive SET status = 'released', completed_at = ? WHERE id = ?",
                      (format_time(utcnow()), query_id))
            c.execute("DELETE FROM owners WHERE query_id = ?", (query_id,))
            self._step("release:marked")
            c.execute("UPDATE grants SET spent_eps = dec_sub_floor(spent_eps, ?), "
                      "spent_delta = dec_sub_floor(spent_delta, ?) "
                      "WHERE user = ? AND dataset = ? AND user_id IS ?",  # that identity's grant only
                      (row["cost_eps"], row["cost_delta"], row["user"], row["dataset"], row["user_id"]))
        self._step("release:committed")

    def get_record(self, query_id: str) -> ArchiveRecord:
        rows = self.db.execute(f"SELECT {RECORD_COLUMNS} FROM archive WHERE id = ?", (query_id,))
        if not rows:
            raise NotFound(f"query '{query_id}' does not exist")
        return record_from_row(rows[0])

    def find_by_idempotency_key(self, user: str, key: str) -> ArchiveRecord | None:
        rows = self.db.execute(f"SELECT {RECORD_COLUMNS} FROM archive WHERE user_id = "
                               "(SELECT id FROM users WHERE name = ?) AND idempotency_key = ?",
                               (user, key))
        if rows and rows[0]["status"] == "pending" and self.recover(only=rows[0]["id"]):
            return self.find_by_idempotency_key(user, key)  # its owner died: now final
        return record_from_row(rows[0]) if rows else None

    def list_archive(self, user: str | None = None, dataset: str | None = None) -> list[ArchiveRecord]:
        rows = self.db.execute(
            f"SELECT {RECORD_COLUMNS} FROM archive WHERE {_USER_MATCH} "
            "AND (:ds IS NULL OR dataset = :ds) ORDER BY created_at, seq", {"u": user, "ds": dataset})
        return [record_from_row(r) for r in rows]

    def list_archive_page(self, where: ArchiveFilter, *, cursor: str | None = None,
                          limit: int = 100) -> ArchivePage:
        """Keyset pagination on ``seq`` (insertion order), filters in SQL."""
        limit = max(1, min(int(limit), MAX_PAGE))
        after = 0
        if cursor is not None:
            position = decode_cursor(cursor)
            if len(position) != 1 or not isinstance(position[0], int):
                raise InvalidRequest("invalid cursor: pass back the next_cursor of a previous page")
            after = position[0]
        params: dict[str, object] = {"after": after, "u": where.user, "uid": where.user_id,
                  "ds": where.dataset, "st": where.status,
                  "en": where.engine, "limit": limit + 1,
                  "since": format_time(where.since) if where.since else None,
                  "until": format_time(where.until) if where.until else None}
        rows = self.db.execute(
            f"SELECT seq, {RECORD_COLUMNS} FROM archive WHERE seq > :after "
            f"AND {_USER_MATCH} AND (:uid IS NULL OR user_id = :uid) AND (:ds IS NULL OR dataset = :ds) "
            "AND (:st IS NULL OR status = :st) AND (:en IS NULL OR engine = :en) "
            "AND (:since IS NULL OR created_at >= :since) AND (:until IS NULL OR created_at < :until) "
            "ORDER BY seq LIMIT :limit", params)
        page = rows[:limit]
        more = len(rows) > limit
        return ArchivePage([record_from_row(r) for r in page],
                           encode_cursor([page[-1]["seq"]]) if more else None)

    def pending_records(self) -> list[ArchiveRecord]:
        rows = self.db.execute(f"SELECT {RECORD_COLUMNS} FROM archive WHERE status = 'pending' "
                               "ORDER BY created_at, seq")
        return [record_from_row(r) for r in rows]

    # -- the admin audit log -------------------------------------------------------------------------
    def add_admin_event(self, event: AdminEvent) -> None:
        with self.db.write() as c:
            self._log(c, event)

    def list_admin_events(self, *, cursor: str | None = None,
                          limit: int = 100) -> tuple[list[AdminEvent], str | None]:
        limit = max(1, min(int(limit), MAX_PAGE))
        after = 0
        if cursor is not None:
            position = decode_cursor(cursor)
            if len(position) != 1 or not isinstance(position[0], int):
                raise InvalidRequest("invalid cursor: pass back the next_cursor of a previous page")
            after = position[0]
        rows = self.db.execute("SELECT seq, id, at, actor, action, target, before, after FROM admin_log "
                               "WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit + 1))
        events = [AdminEvent(id=r["id"], at=parse_time(r["at"]), actor=r["actor"], action=r["action"],
                             target=r["target"], before=load_json(r["before"]),
                             after=load_json(r["after"])) for r in rows[:limit]]
        more = len(rows) > limit
        return events, encode_cursor([rows[limit - 1]["seq"]]) if more else None

    # -- whole-state copy and lifecycle ------------------------------------------------------------
    def export_state(self) -> dict[str, Any]:
        with self.db.read() as c:
            users = [self._user(r) for r in
                     c.execute("SELECT name, is_admin, suspended, id FROM users ORDER BY name")]
            tokens = [Token(user=r["user"], hash=r["hash"], id=r["id"], created_at=r["created_at"],
                            expires_at=r["expires_at"], last_used_at=r["last_used_at"])
                      for r in c.execute("SELECT user, hash, id, created_at, expires_at, last_used_at "
                                         "FROM tokens ORDER BY user, hash")]
            datasets = [self._dataset(r)
                        for r in c.execute("SELECT description, id FROM datasets ORDER BY name")]
            grants = [grant_from_row(r) for r in  # revoked ones too: their spend is kept
                      c.execute(f"SELECT {GRANT_COLUMNS} FROM grants ORDER BY user, dataset")]
            archive = [record_from_row(r) for r in
                       c.execute(f"SELECT {RECORD_COLUMNS} FROM archive ORDER BY created_at, seq")]
        return build_state(users, tokens, datasets, grants, archive)

    def import_state(self, state: dict[str, Any], *, event: AdminEvent | None = None) -> None:
        parsed = parse_state(state)
        with self.db.write() as c:
            for table in ("users", "tokens", "datasets", "grants", "archive"):
                if c.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:
                    raise Conflict("the store is not empty; import only into a fresh store")
            try:
                c.executemany("INSERT INTO users (name, is_admin, suspended, id) VALUES (?, ?, ?, ?)",
                              [(u.name, int(u.is_admin), int(u.suspended), u.id or new_user_id())
                               for u in parsed.users])
                c.executemany("INSERT INTO tokens (hash, user, id, created_at, expires_at, last_used_at) "
                              "VALUES (?, ?, ?, ?, ?, ?)",
                              [(t.hash, t.user, t.id, t.created_at, t.expires_at, t.last_used_at)
                               for t in parsed.tokens])
                c.executemany("INSERT INTO datasets (name, description, id) VALUES (?, ?, ?)",
                              [(d.name, d.model_dump_json(exclude={"id"}), d.id or new_dataset_id())
                               for d in parsed.datasets])
                c.executemany(f"INSERT INTO grants ({GRANT_COLUMNS}, user_id) "
                              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
                              "(SELECT id FROM datasets WHERE name = ?), "
                              "(SELECT id FROM users WHERE name = ?))",
                              [(g.user, g.dataset, str(g.initial.epsilon), str(g.initial.delta),
                                str(g.spent.epsilon), str(g.spent.delta), int(g.active),
                                g.id or new_grant_id(), g.dataset, g.user)
                               for g in parsed.grants])
                c.executemany(INSERT_RECORD, [record_params(r) for r in parsed.archive])
                # A state from before user (dataset) ids: records belong to the current user
                # (dataset) of their name.
                c.execute("UPDATE archive SET user_id = (SELECT id FROM users WHERE name = archive.user) "
                          "WHERE user_id IS NULL")
                c.execute("UPDATE archive SET dataset_id = "
                          "(SELECT id FROM datasets WHERE name = archive.dataset) "
                          "WHERE dataset_id IS NULL")
                self._log(c, event)
            except sqlite3.IntegrityError as exc:
                raise InvalidRequest(f"the state is inconsistent: {exc}") from None

    def backup(self, target: Path) -> str:
        self.db.backup(Path(target))
        return f"consistent copy written to {target} (SQLite online backup, integrity checked)"

    def ping(self) -> None:
        self.db.execute("SELECT 1 FROM meta LIMIT 1")

    def close(self) -> None:
        try:
            self.last_used.flush()
        except Exception:  # noqa: BLE001 - shutdown is best effort
            log.debug("sqlite store %s: recording tokens' last use at shutdown failed", self.path)
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.stop()
        self.db.close()
