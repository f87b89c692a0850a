"""Whole-state export and import (``lomas admin copy`` between stores).

The format is the store-independent one of :mod:`lomas_core.stores.state`.
"""

from __future__ import annotations

from typing import Any

from lomas_core.api import (
    AdminEvent,
    Conflict,
    Grant,
    Token,
    User,
    build_state,
    new_dataset_id,
    new_grant_id,
    new_user_id,
    parse_state,
)
from lomas_store_mongodb.audit import AuditMixin
from lomas_store_mongodb.codec import (
    dataset_from_doc,
    dataset_to_doc,
    format_time,
    grant_id,
    record_from_doc,
    record_to_doc,
)

__all__ = ["StateMixin"]

_COLLECTIONS = ("users", "tokens", "datasets", "grants", "archive")


class StateMixin(AuditMixin):
    """export_state / import_state in the format shared by every store."""

    def export_state(self) -> dict[str, Any]:
        with self.guard("export_state"):
            users = list(self.users.find({}))
            tokens = list(self.tokens.find({}))
            datasets = list(self.datasets.find({}))
            grants = list(self.grants.find({}, {"pending": 0, "keys": 0}))
            archive = list(self.archive.find({}).sort([("created_at", 1), ("seq", 1)]))
        return build_state(
            sorted((User(name=u["name"], is_admin=bool(u.get("is_admin")),
                         suspended=bool(u.get("suspended")), id=u.get("uid")) for u in users),
                   key=lambda u: u.name),
            sorted((Token(user=t["user"], hash=t["_id"], id=t.get("tid"),
                          created_at=t.get("created_at"), expires_at=t.get("expires_at"),
                          last_used_at=t.get("last_used_at")) for t in tokens),
                   key=lambda t: (t.user, t.hash)),
            sorted((dataset_from_doc(d) for d in datasets), key=lambda d: d.name),
            sorted((self._grant_from_doc(g) for g in grants),  # type: ignore[attr-defined]
                   key=lambda g: (g.user, g.dataset)),
            (record_from_doc(doc) for doc in archive),
        )

    def _is_empty(self) -> bool:
        with self.guard("import_state"):
            return all(self.db[name].count_documents({}, limit=1) == 0 for name in _COLLECTIONS)

    def import_state(self, state: dict[str, Any], *, event: AdminEvent | None = None) -> None:
        parsed = parse_state(state)
        marker = f"import:{event.id}" if event is not None else None
        if not self._is_empty():
            raise Conflict("the target store is not empty")
        # Pending records keep their charge tracked in the grant, as a live charge would.
        pending: dict[str, dict[str, Any]] = {}
        for r in parsed.archive:
            if r.status == "pending":
                pending.setdefault(grant_id(r.user, r.dataset), {})[r.id] = {
                    "cost": r.cost.as_strings(), "engine": r.engine,
                    "created_at": format_time(r.created_at), "idem": r.idempotency_key}
        suspended = {u.name for u in parsed.users if u.suspended}
        uids = {u.name: u.id or new_user_id() for u in parsed.users}
        dsids = {d.name: d.id or new_dataset_id() for d in parsed.datasets}
        grant_docs = [self._import_grant(g, pending.get(grant_id(g.user, g.dataset)),
                                         g.user in suspended, uids[g.user], dsids.get(g.dataset))
                      for g in parsed.grants]
        with self.guard("import_state"), self.audited(event, "meta", {"_id": marker}):
            if parsed.users:
                self.users.insert_many([{"_id": u.name, "name": u.name, "is_admin": u.is_admin,
                                         "suspended": u.suspended, "uid": uids[u.name]}
                                        for u in parsed.users])
            if parsed.tokens:
                self.tokens.insert_many([{"_id": t.hash, "user": t.user, "tid": t.id,
                                          "created_at": t.created_at, "expires_at": t.expires_at,
                                          "last_used_at": t.last_used_at} for t in parsed.tokens])
            if parsed.datasets:
                self.datasets.insert_many([dataset_to_doc(d.model_copy(update={"id": dsids[d.name]}))
                                           for d in parsed.datasets])
            if grant_docs:
                self.grants.insert_many(grant_docs)
            if parsed.archive:
                # A state from before user (dataset) ids: records belong to the current user
                # (dataset) of their name.
                self.archive.insert_many([
                    record_to_doc(r.model_copy(update={
                        "user_id": r.user_id or uids.get(r.user),
                        "dataset_id": r.dataset_id or dsids.get(r.dataset)}), i)
                    for i, r in enumerate(parsed.archive)])
            if marker is not None:
                self.meta.insert_one({"_id": marker})  # the import is complete

    def _import_grant(self, grant: Grant, pending: dict[str, Any] | None,
                      suspended: bool, uid: str, dsid: str | None) -> dict[str, Any]:
        doc: dict[str, Any] = self._grant_doc(  # type: ignore[attr-defined]
            grant.user, grant.dataset, grant.initial, grant.spent, pending)
        doc.update(suspended=suspended, uid=uid, active=grant.active,
                   grid=grant.id or new_grant_id(), dsid=dsid)
        return doc
