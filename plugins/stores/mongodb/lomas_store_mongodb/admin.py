"""Users, tokens, datasets and grants in MongoDB.

A grant document holds the exact initial budget (decimal text), the check counters ``init_*``
(initial rounded down, in units) and ``rem_*`` (``init_*`` minus every cost rounded up), and the
exact spent budget as integer limbs (see ``units.py``). The charge filters on ``rem_* >= cost``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pymongo.errors import DuplicateKeyError

from lomas_core.api import (
    AdminEvent,
    Budget,
    Conflict,
    DatasetDescription,
    Grant,
    NotFound,
    StoreUnavailable,
    TokenInfo,
    User,
    format_time,
    new_dataset_id,
    new_grant_id,
    new_token_id,
    new_user_id,
    note_ids,
    parse_time,
    utcnow,
)
from lomas_store_mongodb.audit import AuditMixin, mark
from lomas_store_mongodb.codec import (
    budget_from_doc,
    dataset_from_doc,
    dataset_to_doc,
    grant_id,
    is_active,
)

__all__ = ["AdminMixin"]

_SET_INITIAL_ATTEMPTS = 20


def user_from_doc(doc: dict[str, Any]) -> User:
    return User(name=doc["name"], is_admin=bool(doc.get("is_admin")),
                suspended=bool(doc.get("suspended")), id=doc.get("uid"))


def token_info(doc: dict[str, Any]) -> TokenInfo:
    return TokenInfo(id=doc["tid"], user=doc["user"],
                     **{k: parse_time(doc[k]) if doc.get(k) else None
                        for k in ("created_at", "expires_at", "last_used_at")})


class AdminMixin(AuditMixin):
    """The admin half of the store."""

    # -- users and tokens -------------------------------------------------------------------------
    def add_user(self, user: User, *, event: AdminEvent | None = None) -> None:
        uid = user.id or new_user_id()
        note_ids(event, id=uid)
        with self.guard("add_user"), self.audited(event, "users", {"uid": uid}):
            try:
                self.users.insert_one({"_id": user.name, "name": user.name, "is_admin": user.is_admin,
                                       "suspended": user.suspended, "uid": uid})
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

    def remove_user(self, name: str, *, event: AdminEvent | None = None) -> None:
        with self.guard("remove_user"):
            doc = self.users.find_one({"_id": name}, {"uid": 1})
            if doc is None:
                raise NotFound(f"user '{name}' not found")
            with self.audited(event, "users", {"uid": doc.get("uid"), "_id": name}, present=False,
                              finish={"op": "remove_user", "name": name, "uid": doc.get("uid")}):
                # Tokens first: a crash part-way leaves a user who can no longer authenticate.
                self.tokens.delete_many({"user": name})
                self.grants.delete_many({"user": name})
                self._step("admin:removing")
                self.users.delete_one({"_id": name})

    def set_suspended(self, name: str, suspended: bool, *,
                      event: AdminEvent | None = None) -> User:
        with self.guard("set_suspended"), \
                self.audited(event, "users", {"_id": name, "_evts": event and event.id}):
            before = self.users.find_one_and_update({"_id": name},
                                                    {"$set": {"suspended": suspended}, **mark(event)})
            if before is None:
                raise NotFound(f"user '{name}' not found")
            # The charge filters on the grant's copy of the flag: suspension is part of the one
            # atomic charge operation (the user document first, so a crash leaves auth refusing).
            self.grants.update_many({"user": name}, {"$set": {"suspended": suspended}})
        return user_from_doc(before)

    def add_token(self, user: str, token_hash: str, *, expires_at: datetime | None = None,
                  token_id: str | None = None, event: AdminEvent | None = None) -> str:
        token_id = token_id or new_token_id()
        with self.guard("add_token"), self.audited(event, "tokens", {"tid": token_id}):
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
        self.last_used.flush()
        with self.guard("list_tokens"):
            if self.users.count_documents({"_id": user}, limit=1) == 0:
                raise NotFound(f"user '{user}' not found")
            docs = list(self.tokens.find({"user": user}, {"_id": 0}))
        return sorted((token_info(d) for d in docs),
                      key=lambda t: (t.created_at is not None, t.created_at or utcnow(), t.id))

    def revoke_token(self, user: str, token_id: str, *, event: AdminEvent | None = None) -> None:
        with self.guard("revoke_token"), \
                self.audited(event, "tokens", {"tid": token_id}, present=False):
            if self.tokens.delete_one({"user": user, "tid": token_id}).deleted_count == 0:
                raise NotFound(f"user '{user}' has no token '{token_id[:40]}'")

    def revoke_tokens(self, user: str, *, event: AdminEvent | None = None) -> int:
        with self.guard("revoke_tokens"):
            tids = [d["tid"] for d in self.tokens.find({"user": user}, {"tid": 1})]
            if event is not None and event.after is not None:
                event.after["count"] = len(tids)
            with self.audited(event, "tokens", {"tid": {"$in": tids}}, present=False,
                              finish={"op": "revoke_tokens", "tids": tids}):
                # Exactly the tokens counted (and logged); one issued meanwhile stays.
                return int(self.tokens.delete_many({"tid": {"$in": tids}}).deleted_count)

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
        self.last_used.touch(token_hash, parse_time(last) if last else None, now)  # no write here
        return user_from_doc(doc)

    def _write_last_used(self, token_hash: str, when: datetime) -> None:
        stamp = format_time(when)
        with self.guard("record_last_used"):
            self.tokens.update_one({"_id": token_hash, "$or": [
                {"last_used_at": None}, {"last_used_at": {"$lt": stamp}}]},
                {"$set": {"last_used_at": stamp}})

    # -- datasets -----------------------------------------------------------------------------------
    def put_dataset(self, dataset: DatasetDescription, *, replace: bool = False,
                    event: AdminEvent | None = None) -> None:
        with self.guard("put_dataset"):
            old = self.datasets.find_one({"_id": dataset.name}, {"dsid": 1}) if replace else None
            if old is not None and old.get("dsid"):
                dsid = old["dsid"]  # a replaced description keeps its dataset's id
            else:
                dsid = dataset.id or new_dataset_id()
            note_ids(event, id=dsid)
            doc = dataset_to_doc(dataset.model_copy(update={"id": None}))
            doc["dsid"] = dsid
            with self.audited(event, "datasets",
                              {"_id": dataset.name, "dsid": dsid, "_evts": event and event.id}):
                if old is not None:
                    fields = {k: v for k, v in doc.items() if k != "_id"}
                    self.datasets.update_one({"_id": dataset.name}, {"$set": fields, **mark(event)})
                    return
                if event is not None:
                    doc["_evts"] = [event.id]
                try:
                    self.datasets.insert_one(doc)
                except DuplicateKeyError:
                    raise Conflict(f"dataset '{dataset.name}' already exists") from None

    def get_dataset(self, name: str) -> DatasetDescription:
        with self.guard("get_dataset"):
            doc = self.datasets.find_one({"_id": name})
        if doc is None:
            raise NotFound(f"dataset '{name}' not found")
        return dataset_from_doc(doc)  # with its id (dsid)

    def list_datasets(self) -> list[DatasetDescription]:
        with self.guard("list_datasets"):
            docs = list(self.datasets.find({}))
        return sorted((dataset_from_doc(d) for d in docs), key=lambda d: d.name)

    def remove_dataset(self, name: str, *, event: AdminEvent | None = None) -> None:
        with self.guard("remove_dataset"):
            doc = self.datasets.find_one({"_id": name}, {"dsid": 1})
            if doc is None:
                raise NotFound(f"dataset '{name}' not found")
            with self.audited(event, "datasets", {"_id": name, "dsid": doc.get("dsid")},
                              present=False, finish={"op": "remove_dataset", "name": name,
                                                     "dsid": doc.get("dsid")}):
                self.grants.delete_many({"dataset": name})
                self._step("admin:removing")
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

    def grant(self, user: str, dataset: str, initial: Budget, *, reset_spent: bool = False,
              event: AdminEvent | None = None) -> None:
        gid = grant_id(user, dataset)
        conflict = f"user '{user}' already has a grant on '{dataset}'"
        with self.guard("grant"):
            owner = self.users.find_one({"_id": user}, {"suspended": 1, "uid": 1})
            if owner is None:
                raise NotFound(f"user '{user}' not found")
            ds = self.datasets.find_one({"_id": dataset}, {"dsid": 1})
            if ds is None:
                raise NotFound(f"dataset '{dataset}' not found")
            old = self.grants.find_one({"_id": gid}, {"initial": 0, "keys": 0})
            if old is not None and is_active(old):
                raise Conflict(conflict)
            grid = (old or {}).get("grid") or new_grant_id()
            note_ids(event, id=grid, dataset_id=ds.get("dsid"))
            with self.audited(event, "grants", {"_id": gid, "_evts": event and event.id}):
                for _ in range(_SET_INITIAL_ATTEMPTS):
                    if self._put_grant(user, dataset, initial, reset_spent, old, owner, ds, grid,
                                       event):
                        return
                    old = self.grants.find_one({"_id": gid}, {"initial": 0, "keys": 0})
                raise StoreUnavailable("the grant kept changing while it was granted again; retry")

    def _put_grant(self, user: str, dataset: str, initial: Budget, reset_spent: bool,
                   old: dict[str, Any] | None, owner: dict[str, Any], ds: dict[str, Any],
                   grid: str, event: AdminEvent | None) -> bool:
        """Insert or re-activate a grant document; False when the revoked grant changed meanwhile
        (one of its running queries finished: read it again)."""
        gid = grant_id(user, dataset)
        conflict = f"user '{user}' already has a grant on '{dataset}'"
        pending = (old or {}).get("pending") or {}
        # A re-grant keeps the pair's lifetime spend unless the admin resets it.
        spent = (self.scale.from_limbs(old) if old is not None and not reset_spent
                 else Budget(Decimal(0), Decimal(0)))
        doc = self._grant_doc(user, dataset, initial, spent)
        doc.update(suspended=bool(owner.get("suspended")), uid=owner.get("uid"), active=True,
                   grid=grid, dsid=ds.get("dsid"))
        if old is None:
            if event is not None:
                doc["_evts"] = [event.id]
            try:
                self.grants.insert_one(doc)
            except DuplicateKeyError:
                raise Conflict(conflict) from None
            return True
        # A revoked grant takes no charges: replacing it cannot lose one. Pending entries and key
        # claims stay (their queries may still finish or be refunded). A reset marks the queries
        # still running: their cost is no longer counted, so refunding one gives nothing back
        # (spent can never go below zero); the filter makes sure every one of them is marked.
        fields = {k: v for k, v in doc.items() if k not in ("_id", "pending")}
        filt: dict[str, Any] = {"_id": gid, "active": False}
        if reset_spent:
            filt.update({f"pending.{qid}": {"$exists": True} for qid in pending})
            fields.update({f"pending.{qid}.reset": True for qid in pending})
        if self.grants.update_one(filt, {"$set": fields, **mark(event)}).matched_count == 1:
            return True
        if is_active(self.grants.find_one({"_id": gid}, {"active": 1}) or {"active": False}):
            raise Conflict(conflict)
        return False

    def revoke(self, user: str, dataset: str, *, event: AdminEvent | None = None) -> None:
        gid = grant_id(user, dataset)
        with self.guard("revoke"), self.audited(event, "grants", {"_id": gid,
                                                                  "_evts": event and event.id}):
            # The document stays, inactive: its spend survives for a later re-grant.
            if self.grants.update_one({"_id": gid, "active": {"$ne": False}},
                                      {"$set": {"active": False}, **mark(event)}).matched_count == 0:
                raise NotFound(f"user '{user}' has no grant on '{dataset}'")

    def set_initial_budget(self, user: str, dataset: str, initial: Budget, *,
                           event: AdminEvent | None = None) -> None:
        new = self.scale.budget_units(initial)
        gid = grant_id(user, dataset)
        with self.guard("set_initial_budget"), \
                self.audited(event, "grants", {"_id": gid, "_evts": event and event.id}):
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
                              "rem_delta": new.delta - doc["init_delta"]}, **mark(event)})
                if result.matched_count == 1:
                    return
        raise StoreUnavailable("the grant kept changing while its budget was updated; retry")

    def _grant_from_doc(self, doc: dict[str, Any]) -> Grant:
        return Grant(user=doc["user"], dataset=doc["dataset"],
                     initial=budget_from_doc(doc["initial"]), spent=self.scale.from_limbs(doc),
                     active=is_active(doc), id=doc.get("grid"), dataset_id=doc.get("dsid"))

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
