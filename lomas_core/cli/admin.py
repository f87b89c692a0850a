"""``lomas admin``: users, tokens, grants, budgets and the archive, straight on the store."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lomas_core import admin_ops
from lomas_core.admin_input import grant_budget, smartnoise_delta_warning
from lomas_core.admin_log import cli_actor
from lomas_core.budget import Budget
from lomas_core.cli.common import (
    add_config_option,
    add_json_option,
    budget_dict,
    config_from_args,
    decimal_arg,
    emit,
    format_table,
    invalid,
    note,
    open_store,
)
from lomas_core.errors import ConfigError, NotFound
from lomas_core.models import Grant, User
from lomas_core.store import MAX_PAGE, ArchiveFilter
from lomas_core.tokens import expiry

__all__ = ["grant_view", "register"]


def _leaf(sub: Any, name: str, help_text: str, *, json_out: bool = False) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    add_config_option(parser)
    if json_out:
        add_json_option(parser)
    return parser


def grant_view(grant: Grant) -> dict[str, Any]:
    """JSON form of a grant with exact decimal text."""
    return {"user": grant.user, "dataset": grant.dataset, "id": grant.id,
            "dataset_id": grant.dataset_id, "initial": budget_dict(grant.initial),
            "spent": budget_dict(grant.spent), "remaining": budget_dict(grant.remaining)}


def check_budget(epsilon: str, delta: str) -> Budget:
    """An exact grant budget (the admin API's rule: :func:`lomas_core.admin_input.grant_budget`)."""
    return grant_budget(epsilon, delta)


# -- the store itself -------------------------------------------------------------------------------
def init(args: argparse.Namespace) -> int:
    """Create the configured store when it does not exist yet (the only command that may)."""
    config = config_from_args(args)
    from lomas_core.plugins import make_store

    try:
        make_store(config).close()
    except ConfigError:
        pass  # missing or empty: create it below (a damaged store fails again there)
    else:
        print(f"the {config.store.name} store already exists; nothing changed")
        return 0
    with open_store(config, create=True):
        pass
    print(f"created a new, empty {config.store.name} store")
    return 0


def backup(args: argparse.Namespace) -> int:
    """A consistent copy of the store while the server runs (or how to make one)."""
    with open_store(config_from_args(args)) as store:
        print(store.backup(Path(args.target)))
    return 0


# -- users and tokens ------------------------------------------------------------------------------
def user_add(args: argparse.Namespace) -> int:
    try:
        user = User(name=args.name, is_admin=args.admin)
    except ValidationError as exc:
        raise invalid(exc, f"user name {args.name!r}") from None
    with open_store(config_from_args(args)) as store:
        stored = admin_ops.add_user(store, cli_actor(), user)
    print(f"created {'admin' if user.is_admin else 'user'} {user.name} ({stored.id})")
    return 0


def user_list(args: argparse.Namespace) -> int:
    with open_store(config_from_args(args)) as store:
        users = [u.model_dump() for u in store.list_users()]
    emit(args, {"users": users}, format_table(users, ["name", "id", "is_admin", "suspended"]))
    return 0


def user_suspend(args: argparse.Namespace) -> int:
    with open_store(config_from_args(args)) as store:
        admin_ops.set_suspended(store, cli_actor(), args.name, True)
    print(f"suspended {args.name}: every request is refused (403 suspended), nothing is charged")
    return 0


def user_resume(args: argparse.Namespace) -> int:
    with open_store(config_from_args(args)) as store:
        admin_ops.set_suspended(store, cli_actor(), args.name, False)
    print(f"resumed {args.name}")
    return 0


def user_remove(args: argparse.Namespace) -> int:
    with open_store(config_from_args(args)) as store:
        admin_ops.remove_user(store, cli_actor(), args.name)
    print(f"removed user {args.name} (with its tokens and grants; its archive stays)")
    return 0


def _expires_arg(text: str) -> str:
    """argparse ``type`` for ``--expires``: checked now, turned into an instant at issue time."""
    try:
        expiry(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid expiry {text!r}: {exc}") from None
    return text


def token_issue(args: argparse.Namespace) -> int:
    expires_at = expiry(args.expires)
    with open_store(config_from_args(args)) as store:
        token, info = admin_ops.issue_token(store, cli_actor(), args.name, expires_at)
    token_id = info.id
    when = expires_at.isoformat() if expires_at else None
    if args.json:
        emit(args, {"user": args.name, "id": token_id, "expires_at": when, "token": token})
    else:
        note(f"new token {token_id} for {args.name}, expires {when or 'never'} "
             "(shown once, store it now):")
        print(token)
    return 0


def token_list(args: argparse.Namespace) -> int:
    with open_store(config_from_args(args)) as store:
        tokens = [t.view() for t in store.list_tokens(args.name)]
    emit(args, {"user": args.name, "tokens": tokens},
         format_table(tokens, ["id", "created_at", "expires_at", "last_used_at", "expired"]))
    return 0


def token_revoke(args: argparse.Namespace) -> int:
    with open_store(config_from_args(args)) as store:
        store.get_user(args.name)
        if args.token_id is not None:
            admin_ops.revoke_token(store, cli_actor(), args.name, args.token_id)
            count = 1
        else:
            count = admin_ops.revoke_tokens(store, cli_actor(), args.name)
    print(f"revoked {count} token(s) of {args.name}")
    return 0


# -- grants and budgets ----------------------------------------------------------------------------
def grant(args: argparse.Namespace) -> int:
    budget = check_budget(args.epsilon, args.delta)
    with open_store(config_from_args(args)) as store:
        current = admin_ops.grant(store, cli_actor(), args.user, args.dataset, budget,
                                  reset_spent=args.reset_spent)
    spent = current.spent
    print(f"granted {args.user} access to {args.dataset} with {budget.display()} ({current.id})"
          + (f" (already spent: {spent.display()})" if spent and (spent.epsilon or spent.delta)
             else ""))
    _warn_smartnoise_delta(args, budget)
    return 0


def _warn_smartnoise_delta(args: argparse.Namespace, budget: Budget) -> None:
    """A grant whose delta is 0 can never run SmartNoise-SQL (it always spends some delta)."""
    if budget.delta:
        return
    try:
        engines = config_from_args(args).engines
    except Exception:  # noqa: BLE001 - a notice only; the grant itself succeeded
        return
    warning = smartnoise_delta_warning(budget, engines, "--delta 1e-4")
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


def revoke(args: argparse.Namespace) -> int:
    with open_store(config_from_args(args)) as store:
        admin_ops.revoke(store, cli_actor(), args.user, args.dataset)
    print(f"revoked {args.user}'s access to {args.dataset} (what was spent stays counted if it is "
          "granted again; `grant --reset-spent` starts over)")
    return 0


def budget_set(args: argparse.Namespace) -> int:
    with open_store(config_from_args(args)) as store:
        current = store.get_grant(args.user, args.dataset)
        if current is None:
            raise NotFound(f"{args.user} has no grant on {args.dataset}; use 'lomas admin grant' first")
        delta = args.delta if args.delta is not None else str(current.initial.delta)
        updated = admin_ops.set_budget(store, cli_actor(), args.user, args.dataset,
                                       check_budget(args.epsilon, delta))
    view = grant_view(updated)
    emit(args, view, f"{args.user} on {args.dataset}: initial {_fmt(view['initial'])}, "
                     f"spent {_fmt(view['spent'])}, remaining {_fmt(view['remaining'])}")
    return 0


def _fmt(budget: dict[str, str]) -> str:
    return f"epsilon={budget['epsilon']} delta={budget['delta']}"


def budget_show(args: argparse.Namespace) -> int:
    with open_store(config_from_args(args)) as store:
        store.get_user(args.user)
        grants = [g for g in store.list_grants(args.user)
                  if args.dataset is None or g.dataset == args.dataset]
    if args.dataset is not None and not grants:
        raise NotFound(f"{args.user} has no grant on {args.dataset}")
    views = [grant_view(g) for g in grants]
    rows = [{"dataset": v["dataset"],
             **{f"{part}_{k}": v[part][k] for part in ("initial", "spent", "remaining")
                for k in ("epsilon", "delta")}} for v in views]
    columns = ["dataset", "initial_epsilon", "initial_delta", "spent_epsilon", "spent_delta",
               "remaining_epsilon", "remaining_delta"]
    emit(args, {"user": args.user, "grants": views}, format_table(rows, columns))
    return 0


def _time_arg(text: str) -> datetime:
    """argparse ``type``: an ISO date or time (UTC when no zone is given)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid time {text!r}: use ISO 8601, e.g. 2026-01-31 "
                                         "or 2026-01-31T12:00:00+00:00") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def archive_show(args: argparse.Namespace) -> int:
    where = ArchiveFilter(user=args.user, dataset=args.dataset, status=args.status,
                          engine=args.engine, since=args.since, until=args.until)
    records: list[dict[str, Any]] = []
    with open_store(config_from_args(args)) as store:
        cursor: str | None = None
        while args.limit is None or len(records) < args.limit:
            want = MAX_PAGE if args.limit is None else min(MAX_PAGE, args.limit - len(records))
            page = store.list_archive_page(where, cursor=cursor, limit=want)
            records.extend({**r.public_view(), "user_id": r.user_id, "dataset_id": r.dataset_id}
                           for r in page.records)
            cursor = page.next_cursor
            if cursor is None:
                break
    columns = ["id", "dataset", "engine", "status", "epsilon", "delta", "created_at"]
    emit(args, {"queries": records}, format_table(records, columns))
    return 0


def log_show(args: argparse.Namespace) -> int:
    """The admin audit log, oldest first (every page, or the last ``--limit`` entries)."""
    events: list[dict[str, Any]] = []
    with open_store(config_from_args(args)) as store:
        cursor: str | None = None
        while True:
            page, cursor = store.list_admin_events(cursor=cursor, limit=MAX_PAGE)
            events.extend(e.view() for e in page)
            if cursor is None:
                break
    if args.limit is not None:
        events = events[-args.limit:] if args.limit > 0 else []
    rows = [{**e, "change": _change(e)} for e in events]
    emit(args, {"events": events}, format_table(rows, ["at", "actor", "action", "target", "change"]))
    return 0


def _change(event: dict[str, Any]) -> str:
    before, after = event.get("before") or {}, event.get("after") or {}
    keys = [k for k in {**before, **after} if before.get(k) != after.get(k)]
    return ", ".join(f"{k}: {before.get(k)} -> {after.get(k)}" for k in keys)[:160]


def register(admin_sub: Any) -> None:
    """Add the init, backup, user, token, grant, revoke, budget and archive subcommands."""
    p = _leaf(admin_sub, "init", "create the configured budget store (servers and other commands "
              "refuse a missing or empty one)")
    p.set_defaults(func=init)
    p = _leaf(admin_sub, "backup", "write a consistent copy of the store while it serves "
              "(sqlite: online backup; mongodb: prints the mongodump command)")
    p.add_argument("target", help="the backup file to create")
    p.set_defaults(func=backup)
    user = admin_sub.add_parser("user", help="add, list and remove users")
    user_sub = user.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = _leaf(user_sub, "add", "create a user")
    p.add_argument("name")
    p.add_argument("--admin", action="store_true", help="give the user the admin role")
    p.set_defaults(func=user_add)
    _leaf(user_sub, "list", "list users", json_out=True).set_defaults(func=user_list)
    p = _leaf(user_sub, "remove", "delete a user with its tokens and grants")
    p.add_argument("name")
    p.set_defaults(func=user_remove)
    p = _leaf(user_sub, "suspend", "refuse every request of a user (403 suspended) without "
              "deleting anything")
    p.add_argument("name")
    p.set_defaults(func=user_suspend)
    p = _leaf(user_sub, "resume", "lift a user's suspension")
    p.add_argument("name")
    p.set_defaults(func=user_resume)

    token = admin_sub.add_parser("token", help="issue, list and revoke API tokens")
    token_sub = token.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = _leaf(token_sub, "issue", "issue a new token for a user (printed once)", json_out=True)
    p.add_argument("name")
    p.add_argument("--expires", type=_expires_arg, default=None,
                   help="expiry: a duration (90d, 12h, 30m, 2w) or an ISO date/time "
                        "(default: never)")
    p.set_defaults(func=token_issue)
    p = _leaf(token_sub, "list", "a user's tokens: ids, created, expiry, last use (never values)",
              json_out=True)
    p.add_argument("name")
    p.set_defaults(func=token_list)
    p = _leaf(token_sub, "revoke", "revoke one token of a user by its id, or every token")
    p.add_argument("name")
    p.add_argument("token_id", nargs="?", default=None,
                   help="the token's id (from `token list`); omitted: every token of the user")
    p.set_defaults(func=token_revoke)

    p = _leaf(admin_sub, "grant", "give a user access to a dataset with a budget")
    p.add_argument("user")
    p.add_argument("dataset")
    p.add_argument("--epsilon", type=decimal_arg, required=True)
    p.add_argument("--delta", type=decimal_arg, default="0")
    p.add_argument("--reset-spent", action="store_true",
                   help="when granting again after a revoke, forget what the pair spent before")
    p.set_defaults(func=grant)
    p = _leaf(admin_sub, "revoke", "remove a user's access to a dataset")
    p.add_argument("user")
    p.add_argument("dataset")
    p.set_defaults(func=revoke)

    budget = admin_sub.add_parser("budget", help="show or change budgets")
    budget_sub = budget.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = _leaf(budget_sub, "set", "change the initial budget of a grant (spent is kept)", json_out=True)
    p.add_argument("user")
    p.add_argument("dataset")
    p.add_argument("--epsilon", type=decimal_arg, required=True)
    p.add_argument("--delta", type=decimal_arg, default=None, help="default: keep the current delta")
    p.set_defaults(func=budget_set)
    p = _leaf(budget_sub, "show", "initial, spent and remaining budgets of a user", json_out=True)
    p.add_argument("user")
    p.add_argument("dataset", nargs="?")
    p.set_defaults(func=budget_show)

    p = _leaf(admin_sub, "log", "the admin audit log: who changed what, when, before and after",
              json_out=True)
    p.add_argument("--limit", type=int, default=None, help="only the last N entries")
    p.set_defaults(func=log_show)

    archive = admin_sub.add_parser("archive", help="the query archive")
    archive_sub = archive.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = _leaf(archive_sub, "show", "a user's archived queries, oldest first", json_out=True)
    p.add_argument("user")
    p.add_argument("dataset", nargs="?")
    p.add_argument("--status", choices=["pending", "success", "failed", "released"])
    p.add_argument("--engine")
    p.add_argument("--since", type=_time_arg, help="created at or after (ISO time, UTC default)")
    p.add_argument("--until", type=_time_arg, help="created before (ISO time, UTC default)")
    p.add_argument("--limit", type=int, default=None, help="at most this many (default: all)")
    p.set_defaults(func=archive_show)
