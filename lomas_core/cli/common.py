"""Shared pieces of the ``lomas`` command: config loading, store access, output and parsing."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError

from lomas_core.budget import Budget, to_decimal
from lomas_core.config import Config, load_config
from lomas_core.errors import InvalidRequest
from lomas_core.store import BudgetStore
from lomas_core.validation import validation_message

__all__ = [
    "UsageError",
    "add_config_option",
    "add_json_option",
    "budget_dict",
    "config_from_args",
    "decimal_arg",
    "emit",
    "format_table",
    "invalid",
    "note",
    "open_store",
    "port_arg",
]


class UsageError(Exception):
    """A mistake in how the command was called (exit status 2)."""


def add_config_option(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """``--config PATH``, accepted before or after the subcommand."""
    parser.add_argument(
        "--config", metavar="PATH",
        default=None if top else argparse.SUPPRESS,
        help="config YAML (default: $LOMAS_CONFIG, else the built-in defaults)")


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def config_from_args(args: argparse.Namespace) -> Config:
    """The config named by ``--config``, else ``$LOMAS_CONFIG``, else the embedded defaults."""
    path = getattr(args, "config", None) or os.environ.get("LOMAS_CONFIG") or None
    config = load_config(path)
    if path is None and not getattr(args, "_defaults_noticed", False):
        args._defaults_noticed = True  # once per command, however often the config is read
        where = (f" (store: {config.resolve_path(str(config.store.options['path']))})"
                 if "path" in config.store.options else "")
        note("lomas: note: no --config and no LOMAS_CONFIG: using the built-in defaults" + where)
    return config


@contextmanager
def open_store(config: Config, *, create: bool = False) -> Iterator[BudgetStore]:
    """The configured budget store (through its plugin), closed on exit.

    A missing or empty store is refused unless ``create`` (``lomas admin init``, demo, copy target).
    """
    from lomas_core.plugins import make_store

    store = make_store(config, create=create)
    try:
        yield store
    finally:
        store.close()


def decimal_arg(text: str) -> str:
    """argparse ``type`` for budget values: an exact, finite, non-negative decimal (kept as text)."""
    try:
        to_decimal(text.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid budget value {text!r}: {exc}") from None
    return text.strip()


def port_arg(text: str) -> int:
    """argparse ``type`` for a TCP port (0..65535)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: use 0..65535")
    return port


def budget_dict(budget: Budget) -> dict[str, str]:
    """Exact JSON form of a budget (plain decimal text such as ``0.000015``, never floats)."""
    from lomas_core.budget import format_decimal

    return {"epsilon": format_decimal(budget.epsilon), "delta": format_decimal(budget.delta)}


def invalid(exc: ValidationError, what: str) -> InvalidRequest:
    """An InvalidRequest summarising a pydantic error without echoing input values."""
    return InvalidRequest(f"{what}: " + validation_message(exc, default="value"))


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A plain aligned text table; ``(none)`` when there are no rows."""
    if not rows:
        return "(none)"
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def emit(args: argparse.Namespace, data: Any, text: str | None = None) -> None:
    """Print ``data`` as JSON when ``--json`` was given, else ``text`` (or ``data`` as JSON)."""
    if getattr(args, "json", False) or text is None:
        print(json.dumps(data, indent=2, sort_keys=False, default=str))
    else:
        print(text)


def note(message: str) -> None:
    """A human remark on stderr (keeps stdout clean for scripts)."""
    print(message, file=sys.stderr)
