"""``lomas admin import`` (users, datasets and grants from one YAML) and ``lomas admin copy``.

Import file::

    users:
      - alice                               # a researcher
      - {name: carol, admin: true}
    datasets:
      - penguins.yaml                       # a description file (relative to this file)
      - {name: trees, adapter: local, options: {path: data/trees.csv}, metadata: trees_meta.yaml}
    grants:
      - {user: alice, dataset: penguins, epsilon: 10, delta: 1e-5}

Everything is validated before anything is written. Entries already in the store with the same
content are left alone, so importing twice is harmless; different content is a conflict unless
``--replace`` (datasets are updated, grants get the new initial budget, spent is kept).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lomas_core import admin_ops
from lomas_core.admin_log import cli_actor
from lomas_core.budget import Budget
from lomas_core.cli.admin import check_budget
from lomas_core.cli.common import add_config_option, config_from_args, invalid, open_store
from lomas_core.cli.datasets import DatasetChecker, description_from_mapping, read_yaml
from lomas_core.config import load_config
from lomas_core.errors import Conflict, InvalidRequest, NotFound
from lomas_core.models import DatasetDescription, User
from lomas_core.store import BudgetStore

__all__ = ["ImportPlan", "parse_import", "register"]


@dataclass
class ImportPlan:
    """What an import file asks for, validated."""

    users: list[User] = field(default_factory=list)
    datasets: list[DatasetDescription] = field(default_factory=list)
    grants: list[tuple[str, str, Budget]] = field(default_factory=list)


def _entries(doc: Mapping[str, Any], key: str) -> list[Any]:
    value = doc.get(key) or []
    if not isinstance(value, list):
        raise InvalidRequest(f"'{key}' must be a list")
    return value


def _user(raw: Any, where: str) -> User:
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, Mapping) or set(raw) - {"name", "admin", "is_admin"}:
        raise InvalidRequest(f"{where}: a user is a name or {{name, admin}}")
    try:
        return User.model_validate({"name": raw.get("name"),
                                    "is_admin": raw.get("admin", raw.get("is_admin", False))})
    except ValidationError as exc:
        raise invalid(exc, where) from None


def _grant(raw: Any, where: str) -> tuple[str, str, Budget]:
    if not isinstance(raw, Mapping) or not {"user", "dataset", "epsilon"} <= set(raw) \
            or set(raw) - {"user", "dataset", "epsilon", "delta"}:
        raise InvalidRequest(f"{where}: a grant is {{user, dataset, epsilon, delta}}")
    try:
        budget = check_budget(raw["epsilon"], raw.get("delta", 0))
    except ValueError as exc:
        raise InvalidRequest(f"{where}: invalid budget: {exc}") from None
    except InvalidRequest as exc:
        raise InvalidRequest(f"{where}: {exc.message}") from None
    return str(raw["user"]), str(raw["dataset"]), budget


def parse_import(path: Path) -> ImportPlan:
    """Read and validate an import file (no store access)."""
    doc = read_yaml(path, "import file")
    if not isinstance(doc, Mapping) or set(doc) - {"users", "datasets", "grants"}:
        raise InvalidRequest(f"import file {path} must be a mapping with users, datasets and grants")
    base = path.resolve().parent
    plan = ImportPlan()
    for i, raw in enumerate(_entries(doc, "users")):
        plan.users.append(_user(raw, f"users[{i}]"))
    for i, raw in enumerate(_entries(doc, "datasets")):
        where = f"datasets[{i}]"
        if isinstance(raw, str):
            file = (base / raw).resolve()
            raw = read_yaml(file, "dataset description")
            plan.datasets.append(description_from_mapping(raw, file.parent, f"{where} ({file.name})"))
        else:
            plan.datasets.append(description_from_mapping(raw, base, where))
    for i, raw in enumerate(_entries(doc, "grants")):
        plan.grants.append(_grant(raw, f"grants[{i}]"))
    for kind, names in (("user", [u.name for u in plan.users]),
                        ("dataset", [d.name for d in plan.datasets]),
                        ("grant", [f"{u}/{d}" for u, d, _ in plan.grants])):
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InvalidRequest(f"{kind}(s) listed twice in {path.name}: {', '.join(dupes)}")
    return plan


def _same_dataset(stored: DatasetDescription, planned: DatasetDescription) -> bool:
    """Equal descriptions (the stored one has an id the plan cannot name)."""
    return stored.model_copy(update={"id": None}) == planned.model_copy(update={"id": None})


def _apply(store: BudgetStore, plan: ImportPlan, replace: bool) -> tuple[dict[str, list[str]], list[str]]:
    """Check the plan against the store, then write it (each change in the admin log).
    Returns (summary, users created)."""
    actor = cli_actor()
    users = {u.name: u for u in store.list_users()}
    datasets = {d.name: d for d in store.list_datasets()}
    grants = {(g.user, g.dataset): g for g in store.list_grants()}
    for user in plan.users:
        if user.name in users and users[user.name].is_admin != user.is_admin:
            raise Conflict(f"user '{user.name}' exists with admin={users[user.name].is_admin}; the "
                           "import says otherwise (roles are not changed by import)")
    for desc in plan.datasets:
        if desc.name in datasets and not _same_dataset(datasets[desc.name], desc) and not replace:
            raise Conflict(f"dataset '{desc.name}' exists with a different description "
                           "(use --replace to update it)")
    known_users = set(users) | {u.name for u in plan.users}
    known_datasets = set(datasets) | {d.name for d in plan.datasets}
    for user_name, dataset, budget in plan.grants:
        if user_name not in known_users:
            raise NotFound(f"grant {user_name}/{dataset}: user '{user_name}' does not exist")
        if dataset not in known_datasets:
            raise NotFound(f"grant {user_name}/{dataset}: dataset '{dataset}' does not exist")
        old = grants.get((user_name, dataset))
        if old is not None and old.initial != budget and not replace:
            raise Conflict(f"grant {user_name}/{dataset} exists with initial budget epsilon="
                           f"{old.initial.epsilon} delta={old.initial.delta} (use --replace)")

    done: dict[str, list[str]] = {"created": [], "updated": [], "unchanged": []}
    created_users = []
    for user in plan.users:
        if user.name in users:
            done["unchanged"].append(f"user {user.name}")
        else:
            admin_ops.add_user(store, actor, user)
            created_users.append(user.name)
            done["created"].append(f"user {user.name}")
    for desc in plan.datasets:
        if desc.name not in datasets:
            admin_ops.put_dataset(store, actor, desc)
            done["created"].append(f"dataset {desc.name}")
        elif _same_dataset(datasets[desc.name], desc):
            done["unchanged"].append(f"dataset {desc.name}")
        else:
            admin_ops.put_dataset(store, actor, desc, replace=True)
            done["updated"].append(f"dataset {desc.name}")
    for user_name, dataset, budget in plan.grants:
        old = grants.get((user_name, dataset))
        label = f"grant {user_name}/{dataset}"
        if old is None:
            admin_ops.grant(store, actor, user_name, dataset, budget)
            done["created"].append(label)
        elif old.initial == budget:
            done["unchanged"].append(label)
        else:
            admin_ops.set_budget(store, actor, user_name, dataset, budget)
            done["updated"].append(label)
    return done, created_users


def import_command(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    plan = parse_import(Path(args.file))
    with DatasetChecker(config) as checker:
        for desc in plan.datasets:
            checker.check(desc)
    if args.dry_run:
        print(f"{args.file} is valid: {len(plan.users)} user(s), {len(plan.datasets)} dataset(s), "
              f"{len(plan.grants)} grant(s); nothing written")
        return 0
    with open_store(config) as store:
        done, created = _apply(store, plan, args.replace)
        tokens = {}
        if args.issue_tokens:
            for name in created:
                tokens[name], _ = admin_ops.issue_token(store, cli_actor(), name, None)
    for state, items in done.items():
        for item in items:
            print(f"{state:>9}: {item}")
    for name, token in tokens.items():
        print(f"    token: {name} {token}")
    return 0


def copy_command(args: argparse.Namespace) -> int:
    source_config = config_from_args(args)
    target_config = load_config(args.to)
    with open_store(source_config) as source:
        state = source.export_state()
    with open_store(target_config, create=True) as target:  # refuses a non-empty target
        numbers = admin_ops.import_state(target, cli_actor(), state,
                                         f"{source_config.store.name} store")
    counts = ", ".join(f"{n} {k}" for k, n in numbers.items())
    print(f"copied {counts} to the {target_config.store.name} store of {args.to}")
    return 0


def register(admin_sub: Any) -> None:
    """Add ``lomas admin import`` and ``lomas admin copy``."""
    p = admin_sub.add_parser("import", help="create users, datasets and grants from a YAML file")
    p.add_argument("file")
    p.add_argument("--replace", action="store_true",
                   help="update datasets and grant budgets that differ instead of failing")
    p.add_argument("--issue-tokens", action="store_true",
                   help="issue a token for every user created and print it once")
    p.add_argument("--dry-run", action="store_true", help="validate only")
    add_config_option(p)
    p.set_defaults(func=import_command)
    p = admin_sub.add_parser("copy", help="copy all state to the (empty) store of another config")
    p.add_argument("--to", required=True, metavar="CONFIG", help="the target config YAML")
    add_config_option(p)
    p.set_defaults(func=copy_command)
