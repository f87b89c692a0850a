"""Users, tokens, datasets and grants in MongoDB.

A grant document holds the exact initial budget (decimal text), the check counters ``init_*``
(initial rounded down, in units) and ``rem_*`` (``init_*`` minus every cost rounded up), and the
exact spent budget as integer limbs (see ``units.py``). The charge filters on ``rem_* >= cost``.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pymongo.errors import DuplicateKeyError

from lomas_core.api import (
    MAX_PAGE,
    AdminEvent,
    Budget,
    Conflict,
    DatasetDescription,
    Grant,
    InvalidRequest,
    NotFound,
    StoreUnavailable,
    TokenInfo,
    User,
    decode_cursor,
    encode_cursor,
    format_time,
    new_token_id,
    new_user_id,
    parse_time,
    utcnow,
)
from lomas_store_mongodb.base import MongoBase
from lomas_store_mongodb.codec import (
    budget_from_doc,
    dataset_from_doc,
    dataset_to_doc,
    dump_json,
    grant_id,
    is_active,
    load_json,
)

__all__ = ["AdminMixin"]

_SET_INITIAL_ATTEMPTS = 20
#: ``last_used_at`` is refreshed at most this often (so authentication rarely writes).
_LAST_USED_RESOLUTION = timedelta(seconds=60)


def user_from_doc(doc: dict[str, Any]) -> User:
    return User(name=doc["name"], is_admin=bool(doc.get("is_admin")),
                suspended=bool(doc.get("suspended")), id=doc.get("uid"))


def token_info(doc: dict[str, Any]) -> TokenInfo:
    return TokenInfo(id=doc["tid"], user=doc["user"],
                     **{k: parse_time(doc[k]) if doc.get(k) else None
                        for k in ("created_at", "expires_at", "last_used_at")})


class AdminMixin(MongoBase):
    """The admin half of the store."""

    # -- users and tokens -------------------------------------------------------------------------
    def add_user(self, user: User) -> None:
        with self.guard("add_user"):
            try:
                self.users.insert_one({"_id": user.name, "name": user.name, "is_admin": user.is_admin,
                                       "suspended": user.suspended, "uid": new_user_id()})
            except DuplicateKeyError:
                raise Conflict(f"user '{user.name}' already exists") from None

    def get_user(self, name: str) -> User:
        with self.guard("get_user"):
            doc = self.users.find_one({"_id": name})
        if doc is None:
            raise NotFound(f"user '{name}' not found")
        return user_from_doc(doc)

    def list_users(self) -> list[User]:
        with self.guard("list_users"):
            docs = list(self.users.find({}))
        return sorted((user_from_doc(d) for d in docs), key=lambda u: u.name)

    def remove_user(self, name: str) -> None:
        with self.guard("remove_user"):
            if self.users.count_documents({"_id": name}, limit=1) == 0:
                raise NotFound(f"user '{name}' not found")
            # Tokens first: a crash part-way leaves a user who can no longer authenticate.
            self.tokens.delete_many({"user": name})
            self.grants.delete_many({"user": name})
            self.users.delete_one({"_id": name})

    def set_suspended(self, name: str, suspended: bool) -> User:
        with self.guard("set_suspended"):
            before = self.users.find_one_and_update({"_id": name}, {"$set": {"suspended": suspended}})
            if before is None:
                raise NotFound(f"user '{name}' not found")
            # The charge filters on the grant's copy of the flag: suspension is part of the one
            # atomic charge operation (the user document first, so a crash leaves auth refusing).
            self.grants.update_many({"user": name}, {"$set": {"suspended": suspended}})
        return user_from_doc(before)

    def add_token(self, user: str, token_hash: str, *, expires_at: datetime | None = None) -> str:
        token_id = new_token_id()
        with self.guard("add_token"):
            if self.users.count_documents({"_id": user}, limit=1) == 0:
                raise NotFound(f"user '{user}' not found")
            try:
                self.tokens.insert_one({"_id": token_hash, "user": user, "tid": token_id,
                                        "created_at": format_time(utcnow()),
                                        "expires_at": format_time(expires_at) if expires_at else None,
                                        "last_used_at": None})
            except DuplicateKeyError:
                raise Conflict("this token is already registered") from None
        return token_id

    def list_tokens(self, user: str) -> list[TokenInfo]:
        with self.guard("list_tokens"):
            if self.users.count_documents({"_id": user}, limit=1) == 0:
                raise NotFound(f"user '{user}' not found")
            docs = list(self.tokens.find({"user": user}, {"_id": 0}))
        return sorted((token_info(d) for d in docs),
                      key=lambda t: (t.created_at is not None, t.created_at or utcnow(), t.id))

    def revoke_token(self, user: str, token_id: str) -> None:
        with self.guard("revoke_token"):
            if self.tokens.delete_one({"user": user, "tid": token_id}).deleted_count == 0:
                raise NotFound(f"user '{user}' has no token '{token_id[:40]}'")

    def revoke_tokens(self, user: str) -> int:
        with self.guard("revoke_tokens"):
            return int(self.tokens.delete_many({"user": user}).deleted_count)

    def user_for_token(self, token_hash: str) -> User | None:
        now = utcnow()
        with self.guard("user_for_token"):
            token = self.tokens.find_one({"_id": token_hash})
            if token is None:
                return None
            if token.get("expires_at") and token["expires_at"] <= format_time(now):
                return None
            doc = self.users.find_one({"_id": token["user"]})
            if doc is None:
                return None
            last = token.get("last_used_at")
            if last is None or last < format_time(now - _LAST_USED_RESOLUTION):
                self.tokens.update_one({"_id": token_hash},
                                       {"$set": {"last_used_at": format_time(now)}})
        return user_from_doc(doc)

    # -- datasets -----------------------------------------------------------------------------------
    def put_dataset(self, dataset: DatasetDescription, *, replace: bool = False) -> None:
        doc = dataset_to_doc(dataset)
        with self.guard("put_dataset"):
            if replace:
                self.datasets.replace_one({"_id": dataset.name}, doc, upsert=True)
                return
            try:
                self.datasets.insert_one(doc)
            except DuplicateKeyError:
                raise Conflict(f"dataset '{dataset.name}' already exists") from None

    def get_dataset(self, name: str) -> DatasetDescription:
        with self.guard("get_dataset"):
            doc = self.datasets.find_one({"_id": name})
        if doc is None:
            raise NotFound(f"dataset '{name}' not found")
        return dataset_from_doc(doc)

    def list_datasets(self) -> list[DatasetDescription]:
        with self.guard("list_datasets"):
            docs = list(self.datasets.find({}))
        return sorted((dataset_from_doc(d) for d in docs), key=lambda d: d.name)

    def remove_dataset(self, name: str) -> None:
        with self.guard("remove_dataset"):
            if self.datasets.count_documents({"_id": name}, limit=1) == 0:
                raise NotFound(f"dataset '{name}' not found")
            self.grants.delete_many({"dataset": name})
            self.datasets.delete_one({"_id": name})

    # -- grants -------------------------------------------------------------------------------------
    def _grant_doc(self, user: str, dataset: str, initial: Budget, spent: Budget,
                   pending: dict[str, Any] | None = None) -> dict[str, Any]:
        init = self.scale.budget_units(initial)
        used = self.scale.cost_units(spent)
        return {
            "_id": grant_id(user, dataset), "user": user, "dataset": dataset,
            "initial": initial.as_strings(),
            "init_eps": init.epsilon, "init_delta": init.delta,
            "rem_eps": init.epsilon - used.epsilon, "rem_delta": init.delta - used.delta,
            **self.scale.limbs(spent),
            "pending": pending or {},
        }

    def grant(self, user: str, dataset: str, initial: Budget, *, reset_spent: bool = False) -> None:
        gid = grant_id(user, dataset)
        conflict = f"user '{user}' already has a grant on '{dataset}'"
        with self.guard("grant"):
            owner = self.users.find_one({"_id": user}, {"suspended": 1, "uid": 1})
            if owner is None:
                raise NotFound(f"user '{user}' not found")
            if self.datasets.count_documents({"_id": dataset}, limit=1) == 0:
                raise NotFound(f"dataset '{dataset}' not found")
            old = self.grants.find_one({"_id": gid}, {"initial": 0, "keys": 0})
            if old is not None and is_active(old):
                raise Conflict(conflict)
            # A re-grant keeps the pair's lifetime spend unless the admin resets it.
            spent = (self.scale.from_limbs(old) if old is not None and not reset_spent
                     else Budget(Decimal(0), Decimal(0)))
            doc = self._grant_doc(user, dataset, initial, spent)
            doc.update(suspended=bool(owner.get("suspended")), uid=owner.get("uid"), active=True)
            if old is None:
                try:
                    self.grants.insert_one(doc)
                except DuplicateKeyError:
                    raise Conflict(conflict) from None
                return
            # A revoked grant takes no charges: replacing it cannot lose one. Pending entries
            # and key claims stay (their queries may still finish or be refunded).
            fields = {k: v for k, v in doc.items() if k not in ("_id", "pending")}
            if self.grants.update_one({"_id": gid, "active": False},
                                      {"$set": fields}).matched_count == 0:
                raise Conflict(conflict)

    def revoke(self, user: str, dataset: str) -> None:
        with self.guard("revoke"):
            # The document stays, inactive: its spend survives for a later re-grant.
            if self.grants.update_one({"_id": grant_id(user, dataset), "active": {"$ne": False}},
                                      {"$set": {"active": False}}).matched_count == 0:
                raise NotFound(f"user '{user}' has no grant on '{dataset}'")

    def set_initial_budget(self, user: str, dataset: str, initial: Budget) -> None:
        new = self.scale.budget_units(initial)
        gid = grant_id(user, dataset)
        with self.guard("set_initial_budget"):
            for _ in range(_SET_INITIAL_ATTEMPTS):
                doc = self.grants.find_one({"_id": gid, "active": {"$ne": False}},
                                           {"init_eps": 1, "init_delta": 1})
                if doc is None:
                    raise NotFound(f"user '{user}' has no grant on '{dataset}'")
                # Compare-and-set on the old initial units: charges may run concurrently, and
                # shifting rem_* by the difference keeps rem = init - spent without reading spent.
                result = self.grants.update_one(
                    {"_id": gid, "init_eps": doc["init_eps"], "init_delta": doc["init_delta"]},
                    {"$set": {"initial": initial.as_strings(), "init_eps": new.epsilon,
                              "init_delta": new.delta},
                     "$inc": {"rem_eps": new.epsilon - doc["init_eps"],
                              "rem_delta": new.delta - doc["init_delta"]}})
                if result.matched_count == 1:
                    return
        raise StoreUnavailable("the grant kept changing while its budget was updated; retry")

    def _grant_from_doc(self, doc: dict[str, Any]) -> Grant:
        return Grant(user=doc["user"], dataset=doc["dataset"],
                     initial=budget_from_doc(doc["initial"]), spent=self.scale.from_limbs(doc),
                     active=is_active(doc))

    def get_grant(self, user: str, dataset: str, *, include_revoked: bool = False) -> Grant | None:
        query: dict[str, Any] = {"_id": grant_id(user, dataset)}
        if not include_revoked:
            query["active"] = {"$ne": False}
        with self.guard("get_grant"):
            doc = self.grants.find_one(query, {"pending": 0, "keys": 0})
        return None if doc is None else self._grant_from_doc(doc)

    def list_grants(self, user: str | None = None) -> list[Grant]:
        query: dict[str, Any] = {"active": {"$ne": False}}
        if user is not None:
            query["user"] = user
        with self.guard("list_grants"):
            docs = list(self.grants.find(query, {"pending": 0, "keys": 0}))
        grants = [self._grant_from_doc(d) for d in docs]
        return sorted(grants, key=lambda g: (g.user, g.dataset))

    # -- the admin audit log -------------------------------------------------------------------------
    def add_admin_event(self, event: AdminEvent) -> None:
        with self.guard("add_admin_event"):
            self.db["admin_log"].insert_one({
                "_id": event.id, "seq": time.time_ns(), "at": format_time(event.at),
                "actor": event.actor, "action": event.action, "target": event.target,
                "before": dump_json(event.before), "after": dump_json(event.after)})

    def list_admin_events(self, *, cursor: str | None = None,
                          limit: int = 100) -> tuple[list[AdminEvent], str | None]:
        limit = max(1, min(int(limit), MAX_PAGE))
        query: dict[str, Any] = {}
        if cursor is not None:
            position = decode_cursor(cursor)
            if (len(position) != 2 or not isinstance(position[0], int)
                    or not isinstance(position[1], str)):
                raise InvalidRequest("invalid cursor: pass back the next_cursor of a previous page")
            seq, last = position
            query["$or"] = [{"seq": {"$gt": seq}}, {"seq": seq, "_id": {"$gt": last}}]
        with self.guard("list_admin_events"):
            docs = list(self.db["admin_log"].find(query).sort([("seq", 1), ("_id", 1)]).limit(limit + 1))
        events = [AdminEvent(id=d["_id"], at=parse_time(d["at"]), actor=d["actor"], action=d["action"],
                             target=d["target"], before=load_json(d.get("before")),
                             after=load_json(d.get("after"))) for d in docs[:limit]]
        more = len(docs) > limit
        return events, encode_cursor([int(docs[limit - 1]["seq"]), docs[limit - 1]["_id"]]) if more \
            else None
