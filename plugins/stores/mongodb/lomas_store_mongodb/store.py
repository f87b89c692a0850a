"""The MongoDB budget store: connection, indexes, start-up checks and lifecycle."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel
from pymongo import ASCENDING, MongoClient
from pymongo.errors import DuplicateKeyError, PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from lomas_core.api import (
    ArchiveRecord,
    BudgetStore,
    ConfigError,
    LastUsed,
    PluginContext,
    StoreUnavailable,
    new_dataset_id,
    new_grant_id,
    new_token_id,
    new_user_id,
)
from lomas_store_mongodb.admin import AdminMixin
from lomas_store_mongodb.base import log
from lomas_store_mongodb.ledger import LedgerMixin
from lomas_store_mongodb.options import MongoOptions, describe_hosts, parse_options
from lomas_store_mongodb.recovery import RecoveryMixin
from lomas_store_mongodb.state_io import StateMixin
from lomas_store_mongodb.units import Scale

__all__ = ["SCHEMA_VERSION", "MongoStore"]

class _NoCommandDocuments(logging.Filter):
    """pymongo's command log (DEBUG) holds whole commands and replies: token hashes, budgets,
    archived requests and results. None of it may reach a log, whatever the level."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


def _quiet_command_log() -> None:
    logger = logging.getLogger("pymongo.command")
    if not any(isinstance(f, _NoCommandDocuments) for f in logger.filters):
        logger.addFilter(_NoCommandDocuments())


_quiet_command_log()

#: 2: token ids and times, suspension; 3: user ids on users, grants and archive records, revoked
#: grants kept inactive; 4: the admin_log collection; 5: dataset and grant ids (documents of older
#: versions are upgraded by ``_migrate``).
SCHEMA_VERSION = 5


class MongoStore(AdminMixin, LedgerMixin, RecoveryMixin, StateMixin, BudgetStore):
    """Budget store on MongoDB (or any server speaking its wire protocol, such as nx-27017).

    Build it with :meth:`from_options`; the constructor connects, checks the server answers,
    creates the unique indexes and reconciles interrupted charges.
    """

    Options: ClassVar[type[BaseModel]] = MongoOptions

    def __init__(self, uri: str, options: MongoOptions | None = None, *, recover: bool = True,
                 create: bool = False) -> None:
        self.options = options or MongoOptions(uri=uri)
        self.hosts = describe_hosts(uri)
        self.scale = Scale(self.options.epsilon_digits, self.options.delta_digits)
        self.recovery_grace_seconds = self.options.recovery_grace_seconds
        self.last_used = LastUsed(self._write_last_used, self.options.token_last_used_seconds)
        self.lease_seconds = self.options.lease_seconds
        try:
            self.client: MongoClient[dict[str, Any]] = MongoClient(uri, **self.options.client_kwargs())
        except (PyMongoError, TypeError, ValueError) as exc:
            raise ConfigError(f"mongodb store: cannot use the URI for {self.hosts}: "
                              f"{type(exc).__name__}") from None
        read_concern = ReadConcern(self.options.read_concern) if self.options.read_concern else None
        self.db = self.client.get_database(
            self.options.database, write_concern=WriteConcern(**self.options.write_concern.kwargs()),
            read_concern=read_concern)
        try:
            self.client.admin.command("ping")
            self._check_scale(create)
            self._migrate()
            self._create_indexes()
            self._register_owner()
            if recover:
                self.recover()
                self.reconcile_admin_log()
        except PyMongoError as exc:
            self.client.close()
            raise ConfigError(f"mongodb store: cannot reach MongoDB at {self.hosts} "
                              f"(database '{self.options.database}'): {type(exc).__name__}") from None
        except StoreUnavailable:
            self.client.close()
            raise ConfigError(f"mongodb store: MongoDB at {self.hosts} failed during start-up") from None

    @classmethod
    def from_options(cls, options: Mapping[str, Any], context: PluginContext | None = None, *,
                     create: bool | None = None) -> MongoStore:
        """Build the store from the config's ``store.options``.

        A database without a lomas store is refused unless ``create`` (default: the context's
        ``create_store``, i.e. ``lomas admin init``).
        """
        opts = parse_options(options)
        if create is None:
            create = context.create_store if context is not None else False
        return cls(opts.resolve_uri(context), opts, create=create)

    @classmethod
    def create(cls, options: MongoOptions, context: PluginContext) -> MongoStore:
        """Build the store from options the core validated (see :meth:`from_options`)."""
        return cls(options.resolve_uri(context), options, create=context.create_store)

    def _create_indexes(self) -> None:
        self.users.create_index([("name", ASCENDING)], unique=True, name="user_name_unique")
        self.datasets.create_index([("name", ASCENDING)], unique=True, name="dataset_name_unique")
        self.grants.create_index([("user", ASCENDING), ("dataset", ASCENDING)], unique=True,
                                 name="grant_user_dataset_unique")
        self.grants.create_index([("dataset", ASCENDING)], name="grant_dataset")
        self.tokens.create_index([("user", ASCENDING)], name="token_user")
        self.tokens.create_index([("tid", ASCENDING)], unique=True, name="token_id_unique")
        self.archive.create_index([("uid", ASCENDING), ("idem", ASCENDING)], unique=True,
                                  name="archive_uid_idempotency_key_unique",
                                  partialFilterExpression={"idem": {"$type": "string"},
                                                           "uid": {"$type": "string"}})
        self.users.create_index([("uid", ASCENDING)], unique=True, name="user_id_unique")
        self.datasets.create_index([("dsid", ASCENDING)], name="dataset_id")
        self.grants.create_index([("grid", ASCENDING)], name="grant_id")
        self.db["admin_log"].create_index([("seq", ASCENDING)], name="admin_log_order")
        self.archive.create_index([("created_at", ASCENDING), ("seq", ASCENDING)], name="archive_time")
        self.archive.create_index([("status", ASCENDING)], name="archive_status")
        self.archive.create_index([("seq", ASCENDING)], name="archive_pages")  # + _id: not on nx-27017

    def _migrate(self) -> None:
        """Upgrade documents written by older versions (idempotent; safe with several servers).

        Tokens without an id get one (the token lifecycle needs it); users and grants without the
        ``suspended`` flag read as not suspended and need nothing.
        """
        for doc in self.tokens.find({"tid": {"$exists": False}}, {"_id": 1}):
            self.tokens.update_one({"_id": doc["_id"], "tid": {"$exists": False}},
                                   {"$set": {"tid": new_token_id(), "created_at": None,
                                             "expires_at": None, "last_used_at": None}})
        # Version 3: stable identities. Each user gets an id; its grants and the records archived
        # under its name belong to it (the only knowledge there is). Records of users removed
        # before the upgrade get none, so no later user of that name inherits them.
        for doc in self.users.find({"uid": {"$exists": False}}, {"_id": 1}):
            self.users.update_one({"_id": doc["_id"], "uid": {"$exists": False}},
                                  {"$set": {"uid": new_user_id()}})
        for doc in self.users.find({}, {"_id": 1, "uid": 1}):
            self.grants.update_many({"user": doc["_id"], "uid": {"$exists": False}},
                                    {"$set": {"uid": doc["uid"]}})
            self.archive.update_many({"user": doc["_id"], "uid": {"$exists": False}},
                                     {"$set": {"uid": doc["uid"]}})
        # Version 5: stable dataset and grant identities; grants and records belong to the dataset
        # currently holding their name. Once only: a later dataset of a removed name must not
        # adopt the old records.
        version = (self.meta.find_one({"_id": "schema"}) or {}).get("version", 0)
        if version < 5:
            self._migrate_dataset_ids()
        if "archive_user_idempotency_key_unique" in self.archive.index_information():
            # Keys belong to identities now: a new user of an old name may reuse them.
            self.archive.drop_index("archive_user_idempotency_key_unique")
        self.meta.update_one({"_id": "schema"}, {"$max": {"version": SCHEMA_VERSION}}, upsert=True)

    def _migrate_dataset_ids(self) -> None:
        """Schema 5: each dataset and grant gets an id; grants and records point at their dataset."""
        for doc in self.datasets.find({"dsid": {"$exists": False}}, {"_id": 1}):
            self.datasets.update_one({"_id": doc["_id"], "dsid": {"$exists": False}},
                                     {"$set": {"dsid": new_dataset_id()}})
        for doc in self.grants.find({"grid": {"$exists": False}}, {"_id": 1}):
            self.grants.update_one({"_id": doc["_id"], "grid": {"$exists": False}},
                                   {"$set": {"grid": new_grant_id()}})
        for doc in self.datasets.find({}, {"_id": 1, "dsid": 1}):
            self.grants.update_many({"dataset": doc["_id"], "dsid": {"$exists": False}},
                                    {"$set": {"dsid": doc["dsid"]}})
            self.archive.update_many({"dataset": doc["_id"], "dsid": {"$exists": False}},
                                     {"$set": {"dsid": doc["dsid"]}})

    def _check_scale(self, create: bool) -> None:
        """The ``units`` record marks an initialised store and fixes its unit scale.

        Without it the database is new, or was dropped or restored badly: refused unless ``create``.
        """
        wanted = {"epsilon_digits": self.scale.epsilon_digits, "delta_digits": self.scale.delta_digits}
        doc = self.meta.find_one({"_id": "units"})
        if doc is None:
            if not create:
                self.client.close()
                raise ConfigError(
                    f"mongodb store: database '{self.options.database}' at {self.hosts} holds no "
                    "lomas store (no units record): restore it (mongorestore of a mongodump), or "
                    "create a new, empty store explicitly with `lomas admin init`")
            try:
                self.meta.insert_one({"_id": "units", **wanted})
            except DuplicateKeyError:
                pass
            doc = self.meta.find_one({"_id": "units"}) or {}
        stored = {k: doc.get(k) for k in wanted}
        if stored != wanted:
            self.client.close()
            raise ConfigError(
                f"mongodb store: database '{self.options.database}' at {self.hosts} uses "
                f"epsilon_digits={stored['epsilon_digits']}, delta_digits={stored['delta_digits']}; "
                "the options must match")

    def backup(self, target: Any) -> str:
        from lomas_core.api import InvalidRequest

        raise InvalidRequest(
            "the mongodb store is backed up with MongoDB's tools while it serves: "
            f"`mongodump --uri <uri> --db {self.options.database} --out <dir>` (use --oplog on a "
            "replica set for a point-in-time copy); restore with `mongorestore`")

    def ping(self) -> None:
        with self.guard("ping"):
            self.client.admin.command("ping")

    def find_by_idempotency_key(self, user: str, key: str) -> ArchiveRecord | None:
        record = super().find_by_idempotency_key(user, key)
        if record is not None and record.status == "pending" and self._settle(
                record.user, record.dataset, record.id):
            record = super().find_by_idempotency_key(user, key)  # its owner died: now final
        return record

    def close(self) -> None:
        self._close_lease()
        try:
            self.last_used.flush()
        except Exception:  # noqa: BLE001 - shutdown is best effort
            log.debug("recording tokens' last use at shutdown failed")
        try:
            self.client.close()
        except PyMongoError:  # pragma: no cover - shutdown is best effort
            log.debug("closing the mongodb client failed", exc_info=True)
