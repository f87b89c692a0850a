"""``lomas demo``: a ready-to-serve demo deployment in one folder.

Writes ``<dir>/lomas.yaml`` (sqlite store, local adapter, the SmartNoise-SQL and OpenDP engines
when installed), the synthetic penguins table with its metadata under ``<dir>/data/``, the dataset
description ``<dir>/penguins.yaml``, creates the researcher ``alice`` with a budget on it and issues
her a token (printed, and saved to ``<dir>/token`` readable by the owner only). Re-running it is
safe: it refreshes the files and issues a new token (``--reset`` also restores the budget and
revokes earlier tokens).
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import Any

from lomas_core.budget import Budget
from lomas_core.cli.common import note, open_store, port_arg
from lomas_core.cli.datasets import DatasetChecker, read_description
from lomas_core.config import load_config
from lomas_core.demo import demo_file
from lomas_core.metadata import Metadata
from lomas_core.models import User
from lomas_core.tokens import hash_token, new_token

__all__ = ["DEMO_DATASET", "DEMO_ENGINES", "DEMO_USER", "register", "write_demo"]

DEMO_DATASET = "penguins"
DEMO_USER = "alice"
DEMO_BUDGET = ("10", "0.0001")
#: Engines the demo enables when their plugin is installed.
DEMO_ENGINES = ("smartnoise_sql", "opendp", "diffprivlib")


def _installed_engines() -> list[str]:
    from lomas_core.plugins import installed_plugins

    names = {p.name for p in installed_plugins() if p.kind == "engine"}
    return [n for n in DEMO_ENGINES if n in names]


def _write_parquet(target: Path) -> None:
    """The shipped CSV as Parquet with the metadata's types (empty cells become nulls)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    import yaml

    meta = Metadata.model_validate(yaml.safe_load(demo_file("penguins_metadata.yaml").read_text()))
    types = {name: pa.string() if col.type == "string" else pa.float64()
             for name, col in meta.columns.items()}
    table = pacsv.read_csv(demo_file("penguins.csv"),
                           convert_options=pacsv.ConvertOptions(column_types=types,
                                                                strings_can_be_null=True))
    pq.write_table(table, target)


def write_demo(folder: Path, port: int = 8000, *, reset: bool = False) -> dict[str, Any]:
    """Create (or refresh) the demo in ``folder``; returns the config path, URL, user and token.

    A refresh keeps the researcher's spent budget and earlier tokens; ``reset`` gives back the
    full budget and revokes every earlier token.
    """
    folder = folder.resolve()
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    _write_parquet(data / "penguins.parquet")
    shutil.copyfile(demo_file("penguins_metadata.yaml"), data / "penguins_metadata.yaml")
    (folder / "penguins.yaml").write_text(
        "# The demo dataset (synthetic penguins-like rows, not real data).\n"
        f"name: {DEMO_DATASET}\n"
        "description: Synthetic penguins-like demo table (344 rows)\n"
        "adapter: local\n"
        "options: {path: data/penguins.parquet}\n"
        "metadata: data/penguins_metadata.yaml\n", encoding="utf-8")
    engines = "{" + ", ".join(f"{n}: {{}}" for n in _installed_engines()) + "}"
    template = demo_file("lomas.yaml.template").read_text(encoding="utf-8")
    config_path = folder / "lomas.yaml"
    config_path.write_text(template.replace("{engines}", engines).replace("{port}", str(port)),
                           encoding="utf-8")

    config = load_config(config_path)
    desc = read_description(folder / "penguins.yaml")
    with DatasetChecker(config) as checker:
        checker.check(desc)
    token = new_token()
    with open_store(config, create=True) as store:  # the demo creates its store explicitly
        store.put_dataset(desc, replace=True)
        existed = DEMO_USER in {u.name for u in store.list_users()}
        if not existed:
            store.add_user(User(name=DEMO_USER))
        if reset and existed:
            store.revoke_tokens(DEMO_USER)
            if store.get_grant(DEMO_USER, DEMO_DATASET) is not None:
                store.revoke(DEMO_USER, DEMO_DATASET)
            store.grant(DEMO_USER, DEMO_DATASET, Budget.of(*DEMO_BUDGET), reset_spent=True)
        elif store.get_grant(DEMO_USER, DEMO_DATASET) is None:
            store.grant(DEMO_USER, DEMO_DATASET, Budget.of(*DEMO_BUDGET))
        store.add_token(DEMO_USER, hash_token(token))
    token_path = folder / "token"
    token_path.write_text(token + "\n", encoding="utf-8")
    os.chmod(token_path, 0o600)
    return {"config": str(config_path), "url": f"http://127.0.0.1:{port}", "user": DEMO_USER,
            "dataset": DEMO_DATASET, "token": token, "engines": _installed_engines(),
            "refreshed": existed and not reset}


def example(url: str, token: str, engines: list[str]) -> str:
    """The five-line researcher example printed by ``lomas demo`` (for an installed engine)."""
    if "smartnoise_sql" in engines or not engines:
        query = ('print(client.smartnoise_sql.query("SELECT species, COUNT(*) AS n FROM df GROUP BY '
                 'species", epsilon=0.5, delta=1e-5).result)')
        first = "from lomas_client import Client"
    else:
        query = "print(client.opendp.query(client.opendp.lazyframe().select(dp.len()), epsilon=0.5).result)"
        first = "import opendp.prelude as dp; from lomas_client import Client"
    return "\n".join([
        first,
        f'client = Client(url="{url}", token="{token}", dataset_name="{DEMO_DATASET}")',
        "print(client.get_dataset_metadata())",
        query,
        "print(client.get_remaining_budget())",
    ])


def demo(args: argparse.Namespace) -> int:
    info = write_demo(Path(args.dir), args.port, reset=args.reset)
    note(f"demo written to {args.dir}: config {info['config']}, "
         f"engines: {', '.join(info['engines']) or 'none installed'}")
    if info["refreshed"]:
        note(f"note: {info['user']} already existed: the spent budget and earlier tokens are kept "
             "(`lomas demo --reset` restores the full budget and revokes earlier tokens)")
    elif args.reset:
        note(f"reset: {info['user']} has the full budget again; earlier tokens are revoked")
    print(f"token for {info['user']} (also in {Path(args.dir) / 'token'}):\n{info['token']}\n")
    print(f"start the server:  lomas serve --config {info['config']}\n")
    print("then, as a researcher (python):\n" + example(info["url"], info["token"], info["engines"]) + "\n")
    print(f'or with curl:\n  curl -H "Authorization: Bearer {info["token"]}" '
          f"{info['url']}/v1/datasets/{DEMO_DATASET}/metadata")
    return 0


def register(sub: Any) -> None:
    """Add ``lomas demo``."""
    p = sub.add_parser("demo", help="write a demo config, dataset, user and token into a folder")
    p.add_argument("--dir", default=".lomas-demo", help="target folder (default: .lomas-demo)")
    p.add_argument("--port", type=port_arg, default=8000, help="port written in the demo config")
    p.add_argument("--reset", action="store_true",
                   help="give the demo researcher the full budget again and revoke earlier tokens")
    p.set_defaults(func=demo)
