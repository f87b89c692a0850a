"""``lomas serve`` (run the API with uvicorn) and ``lomas plugins`` (what is installed, enabled)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from lomas_core.cli.common import (
    add_config_option,
    add_json_option,
    config_from_args,
    emit,
    format_table,
    open_store,
    port_arg,
)

__all__ = ["register"]

APP_FACTORY = "lomas_core.server.app:create_app_from_env"


def _workers(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"invalid worker count {text!r}: use 1..64")
    return int(text)


def serve(args: argparse.Namespace) -> int:
    """Validate the config, then hand over to uvicorn (which re-reads it through LOMAS_CONFIG)."""
    config = config_from_args(args)  # fail fast, with a clear message, on a bad config
    # ... and on a missing, empty or damaged store: one line, never a fresh empty store.
    with open_store(config):
        pass
    path = getattr(args, "config", None) or os.environ.get("LOMAS_CONFIG")
    if path:
        os.environ["LOMAS_CONFIG"] = str(Path(path).resolve())
    import uvicorn

    http = args.workers or config.server.workers
    # Each HTTP process has its own execution pool: by default the cores are shared between them.
    os.environ["LOMAS_HTTP_PROCESSES"] = str(http)
    uvicorn.run(APP_FACTORY, factory=True,
                host=args.host or config.server.host,
                port=args.port if args.port is not None else config.server.port,
                workers=http,
                log_level=config.server.log_level)
    return 0


def plugins(args: argparse.Namespace) -> int:
    """List installed plugins (without importing them) and whether the config enables them."""
    from lomas_core.plugins import installed_plugins

    config = config_from_args(args)
    infos = [p.as_dict() for p in installed_plugins(config)]
    found = {(p["kind"], p["name"]) for p in infos}
    wanted = [("engine", n) for n in config.engines] + [("adapter", n) for n in config.adapters]
    wanted.append(("store", config.store.name))
    missing = [{"kind": k, "name": n, "distribution": "(not installed)", "version": "",
                "module": "", "enabled": True} for k, n in wanted if (k, n) not in found]
    rows = infos + missing
    emit(args, {"plugins": rows},
         format_table([{**r, "enabled": "yes" if r["enabled"] else "no"} for r in rows],
                      ["kind", "name", "distribution", "version", "enabled"]))
    return 0


def register(sub: Any) -> None:
    """Add ``lomas serve`` and ``lomas plugins``."""
    p = sub.add_parser("serve", help="run the lomas server (uvicorn)")
    p.add_argument("--host", default=None, help="default: server.host of the config")
    p.add_argument("--port", type=port_arg, default=None, help="default: server.port of the config")
    p.add_argument("--workers", type=_workers, default=None,
                   help="HTTP processes (default: server.workers of the config); engine work "
                   "runs in execution.workers processes, see docs/admin.md")
    add_config_option(p)
    p.set_defaults(func=serve)
    p = sub.add_parser("plugins", help="list installed plugins and which ones the config enables")
    add_json_option(p)
    add_config_option(p)
    p.set_defaults(func=plugins)
