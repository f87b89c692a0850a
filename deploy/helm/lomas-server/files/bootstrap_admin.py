"""Init step of the lomas-server chart: make sure the first admin token works.

Reads the server config, opens the configured budget store (waiting until it answers) and applies
the server's own ``bootstrap_admin`` rule with the token from an environment variable: nothing
happens when the token is already known; otherwise the admin user is created when missing and the
token is added to it. The token is never printed.

    python bootstrap_admin.py --config /etc/lomas/lomas.yaml --user admin --token-env LOMAS_ADMIN_TOKEN
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from types import SimpleNamespace

from lomas_core.config import BootstrapAdmin, Config, SecretRef, load_config
from lomas_core.errors import ConfigError, LomasError, PluginError, StoreUnavailable
from lomas_core.plugins import make_store
from lomas_core.server.auth import bootstrap_admin
from lomas_core.store import BudgetStore

SECRET_NAME = "__bootstrap_admin_token"


def _transient(exc: BaseException) -> bool:
    """Whether waiting may help: the store could not be opened or reached. A refusal by the
    bootstrap rule itself (e.g. the user exists and is not an admin) is final."""
    if isinstance(exc, (StoreUnavailable, OSError, PluginError)):
        return True
    return not isinstance(exc, ConfigError)


def _open(config: Config, create: bool) -> BudgetStore:
    """The store; a missing one is created only with ``--create-store`` (and said so)."""
    try:
        return make_store(config)
    except ConfigError:
        if not create:
            raise
    store = make_store(config, create=True)
    print("bootstrap-admin: the budget store was missing; created a new, empty one", file=sys.stderr)
    return store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--user", default="admin")
    parser.add_argument("--token-env", default="LOMAS_ADMIN_TOKEN")
    parser.add_argument("--wait-seconds", type=float, default=300.0)
    parser.add_argument("--create-store", action="store_true",
                        help="create the budget store when it is missing (first install)")
    args = parser.parse_args(argv)

    if not os.environ.get(args.token_env, "").strip():
        print(f"bootstrap-admin: environment variable {args.token_env} is empty", file=sys.stderr)
        return 1
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"bootstrap-admin: {exc.message}", file=sys.stderr)
        return 1
    secrets = {**config.secrets, SECRET_NAME: SecretRef(env=args.token_env)}
    config = config.model_copy(update={
        "secrets": secrets, "bootstrap_admin": BootstrapAdmin(user=args.user, token=SECRET_NAME)})

    deadline = time.monotonic() + args.wait_seconds
    while True:
        try:
            # Any failure to open the store may be a store that is not up yet: retry until the deadline
            # (each attempt's reason is logged, so a wrong configuration shows in the pod's log).
            store = _open(config, args.create_store)
            try:
                store.ping()
                bootstrap_admin(SimpleNamespace(config=config, store=store))  # type: ignore[arg-type]
            finally:
                store.close()
            break
        except (LomasError, OSError) as exc:
            reason = exc.message if isinstance(exc, LomasError) else type(exc).__name__
            if not _transient(exc):
                print(f"bootstrap-admin: {reason}", file=sys.stderr)
                return 1
            if time.monotonic() >= deadline:
                print(f"bootstrap-admin: the budget store did not answer in time: {reason}", file=sys.stderr)
                return 1
            print(f"bootstrap-admin: waiting for the budget store ({reason})", file=sys.stderr)
            time.sleep(3)
    print(f"bootstrap-admin: admin user '{args.user}' has the bootstrap token")
    return 0


if __name__ == "__main__":
    sys.exit(main())
