"""The ``lomas`` command.

::

    lomas serve [--host H --port P --workers N]
    lomas plugins [--json]
    lomas admin user|token|dataset|grant|revoke|budget|archive|import|copy ...
    lomas demo [--dir .lomas-demo]
    lomas audit ENGINE [--queries FILE] [--samples N]

The config comes from ``--config PATH`` (before or after the subcommand), else ``$LOMAS_CONFIG``,
else the built-in defaults. Admin commands work on the configured store directly (not over HTTP).
Exit status: 0 on success, 1 on a lomas error (message on stderr), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from lomas_core import __version__
from lomas_core.cli import admin, audit, datasets, demo, serve, transfer
from lomas_core.cli.common import UsageError, add_config_option, invalid
from lomas_core.errors import LomasError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The whole argument parser (subcommands set ``func``)."""
    parser = argparse.ArgumentParser(
        prog="lomas", description="lomas: remote differentially private queries on sensitive data")
    parser.add_argument("--version", action="version", version=f"lomas {__version__}")
    add_config_option(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve.register(sub)
    admin_parser = sub.add_parser("admin", help="manage users, tokens, datasets, grants, budgets")
    admin_sub = admin_parser.add_subparsers(dest="group", metavar="GROUP", required=True)
    admin.register(admin_sub)
    datasets.register(admin_sub)
    transfer.register(admin_sub)
    demo.register(sub)
    audit.register(sub)
    return parser


def _fail(message: str, status: int) -> int:
    print(f"lomas: error: {message}", file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lomas`` command; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help/--version (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        status: int = args.func(args)
        return status
    except UsageError as exc:
        return _fail(str(exc), 2)
    except LomasError as exc:
        return _fail(f"{exc.message} [{exc.code}]", 1)
    except ValidationError as exc:
        return _fail(invalid(exc, "invalid input").message, 1)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - an admin tool: say what broke, without a traceback
        return _fail(f"unexpected {type(exc).__name__}: {exc}", 1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
