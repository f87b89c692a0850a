"""``lomas admin dataset``: add (validated by the adapter), list, show and remove datasets."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lomas_core import admin_ops
from lomas_core.adapter import Adapter
from lomas_core.admin_input import check_description
from lomas_core.admin_log import cli_actor
from lomas_core.cli.common import (
    add_config_option,
    add_json_option,
    config_from_args,
    emit,
    format_table,
    invalid,
    open_store,
)
from lomas_core.config import Config
from lomas_core.errors import InvalidRequest, LomasError, PluginError
from lomas_core.models import DatasetDescription

__all__ = ["DatasetChecker", "description_from_mapping", "read_description", "read_yaml", "register"]


def read_yaml(path: Path, what: str) -> Any:
    """Parse a YAML file; InvalidRequest (naming the file) when unreadable or invalid."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidRequest(f"cannot read {what} {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise InvalidRequest(f"{what} {path} is not valid YAML: {exc}") from None


def _resolve_options(adapter: Any, options: Mapping[str, Any], base_dir: Path) -> dict[str, Any]:
    """The adapter's own rule for relative paths (its class's ``resolve_options``); options of an
    adapter that is not installed stay as written (the check then names the missing adapter)."""
    from lomas_core.plugins import load_classes

    if not isinstance(adapter, str):
        return dict(options)
    try:
        cls = load_classes("adapter", [adapter])[adapter]
    except PluginError:
        return dict(options)
    return cls.resolve_options(options, base_dir)  # type: ignore[attr-defined, no-any-return]


def description_from_mapping(raw: Any, base_dir: Path, where: str) -> DatasetDescription:
    """A dataset description from YAML data.

    Relative file paths in ``options`` resolve against ``base_dir`` by the adapter's own rule, and
    ``metadata`` may name a YAML file (also relative to ``base_dir``) instead of holding the mapping.
    """
    if not isinstance(raw, Mapping):
        raise InvalidRequest(f"{where}: a dataset description must be a mapping")
    data = dict(raw)
    options = data.get("options")
    if isinstance(options, Mapping):
        # A description without ``adapter`` uses the model's default adapter.
        adapter = data.get("adapter", DatasetDescription.model_fields["adapter"].default)
        data["options"] = _resolve_options(adapter, options, base_dir)
    if isinstance(data.get("metadata"), str):
        meta_path = (base_dir / Path(data["metadata"]).expanduser()).resolve()
        data["metadata"] = read_yaml(meta_path, "metadata file")
    try:
        return DatasetDescription.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc, f"{where}: invalid dataset description") from None


def read_description(path: Path) -> DatasetDescription:
    """A dataset description from a YAML file (relative paths resolve against its folder)."""
    return description_from_mapping(read_yaml(path, "dataset description"), path.resolve().parent,
                                    str(path))


class DatasetChecker:
    """Validates descriptions with the configured adapters (built once, without engines or store)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._adapters: dict[str, Adapter] = {}
        self._loaded: list[Any] = []

    def _adapter(self, name: str) -> Adapter:
        if name in self._adapters:
            return self._adapters[name]
        if name not in self.config.adapters:
            enabled = ", ".join(sorted(self.config.adapters)) or "none"
            raise InvalidRequest(f"adapter '{name}' is not enabled in the config; enabled: {enabled}")
        from lomas_core.plugins import load_plugins

        only = self.config.model_copy(update={"engines": {},
                                              "adapters": {name: self.config.adapters[name]}})
        loaded = load_plugins(only, with_store=False)
        self._loaded.append(loaded)
        self._adapters[name] = loaded.adapters[name]
        return self._adapters[name]

    def check(self, desc: DatasetDescription) -> None:
        """Raise InvalidRequest when the adapter refuses the options or no metadata can be found
        (the same check as the admin API: :func:`lomas_core.admin_input.check_description`)."""
        check_description(desc, self._adapter(desc.adapter))

    def close(self) -> None:
        for loaded in self._loaded:
            loaded.close()

    def __enter__(self) -> DatasetChecker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def dataset_add(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    desc = read_description(Path(args.file))
    with DatasetChecker(config) as checker:
        checker.check(desc)
    with open_store(config) as store:
        stored = admin_ops.put_dataset(store, cli_actor(), desc, replace=args.replace)
    print(f"{'saved' if args.replace else 'added'} dataset {desc.name} (adapter {desc.adapter}, "
          f"id {stored.id})")
    return 0


def dataset_check(args: argparse.Namespace) -> int:
    """Check every stored dataset (or the named ones) against the current config; exit 1 on any
    problem. Reads metadata documents but never the data."""
    config = config_from_args(args)
    with open_store(config) as store:
        descs = ([store.get_dataset(n) for n in args.names] if args.names
                 else store.list_datasets())
    problems: dict[str, str] = {}
    with DatasetChecker(config) as checker:
        for desc in descs:
            try:
                checker.check(desc)
            except LomasError as exc:
                problems[desc.name] = exc.message
    rows = [{"name": d.name, "adapter": d.adapter, "status": "error" if d.name in problems else "ok",
             "problem": problems.get(d.name, "")} for d in descs]
    emit(args, {"datasets": rows, "problems": len(problems)},
         format_table(rows, ["name", "adapter", "status", "problem"]))
    return 1 if problems else 0


def dataset_list(args: argparse.Namespace) -> int:
    with open_store(config_from_args(args)) as store:
        rows = [{"name": d.name, "id": d.id, "adapter": d.adapter, "description": d.description}
                for d in store.list_datasets()]
    emit(args, {"datasets": rows}, format_table(rows, ["name", "id", "adapter", "description"]))
    return 0


def dataset_show(args: argparse.Namespace) -> int:
    with open_store(config_from_args(args)) as store:
        view = store.get_dataset(args.name).model_dump(mode="json", exclude_none=True)
    emit(args, view, yaml.safe_dump(view, sort_keys=False).rstrip())
    return 0


def dataset_remove(args: argparse.Namespace) -> int:
    with open_store(config_from_args(args)) as store:
        before = admin_ops.remove_dataset(store, cli_actor(), args.name)
    print(f"removed dataset {args.name} ({before.id}; and its grants; the archive stays)")
    return 0


def register(admin_sub: Any) -> None:
    """Add ``lomas admin dataset add|check|list|show|remove``."""
    dataset = admin_sub.add_parser("dataset", help="add, check, list, show and remove datasets")
    sub = dataset.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("add", help="add a dataset from a description YAML")
    p.add_argument("file", help="YAML with name, adapter, options, metadata (mapping or file)")
    p.add_argument("--replace", action="store_true", help="update the dataset if it exists")
    p.set_defaults(func=dataset_add)
    p = sub.add_parser("check", help="check every dataset against the current config "
                       "(adapter enabled, options and paths allowed, metadata); exit 1 on problems")
    p.add_argument("names", nargs="*", help="only these datasets")
    add_json_option(p)
    p.set_defaults(func=dataset_check)
    p = sub.add_parser("list", help="list datasets")
    p.set_defaults(func=dataset_list)
    add_json_option(p)
    p = sub.add_parser("show", help="show a dataset description")
    p.add_argument("name")
    add_json_option(p)
    p.set_defaults(func=dataset_show)
    p = sub.add_parser("remove", help="delete a dataset and its grants")
    p.add_argument("name")
    p.set_defaults(func=dataset_remove)
    for parser in sub.choices.values():
        add_config_option(parser)
