"""``lomas`` admin commands in-process (``main([...])``) on a real SQLite store."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from lomas_core.budget import Budget
from lomas_core.cli import main
from lomas_core.config import load_config
from lomas_core.models import ArchiveRecord
from lomas_core.plugins import make_store
from lomas_core.tokens import hash_token

METADATA = {"max_ids": 1, "rows": 3, "columns": {"x": {"type": "int", "lower": 0, "upper": 9}}}


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config with a sqlite store, the local adapter on ``data/``, and a small CSV dataset."""
    monkeypatch.delenv("LOMAS_CONFIG", raising=False)
    data = tmp_path / "data"
    data.mkdir()
    (data / "small.csv").write_text("x\n1\n2\n3\n")
    (data / "small_meta.yaml").write_text(yaml.safe_dump(METADATA))
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "secret.csv").write_text("x\n1\n")
    config = tmp_path / "lomas.yaml"
    config.write_text(yaml.safe_dump({
        "store": {"name": "sqlite", "options": {"path": "state.db"}},
        "adapters": {"local": {"allowed_dirs": ["data"]}},
        "engines": {}}))
    (tmp_path / "small.yaml").write_text(
        "name: small\nadapter: local\noptions: {path: data/small.csv}\n"
        "metadata: data/small_meta.yaml\ndescription: three rows\n")
    assert main(["admin", "init", "--config", str(config)]) == 0
    return config


class Cli:
    """Runs ``main`` with ``--config`` and captures output."""

    def __init__(self, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.config, self.capsys = config, capsys

    def __call__(self, *args: str, expect: int = 0) -> tuple[str, str]:
        self.capsys.readouterr()
        rc = main([*args, "--config", str(self.config)])
        out, err = self.capsys.readouterr()
        assert rc == expect, f"exit {rc} (wanted {expect})\nstdout: {out}\nstderr: {err}"
        return out, err

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json")[0])


@pytest.fixture
def cli(deployment: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(deployment, capsys)


def test_users_add_list_remove(cli: Cli) -> None:
    cli("admin", "user", "add", "alice")
    cli("admin", "user", "add", "carol", "--admin")
    assert [{k: u[k] for k in ("name", "is_admin", "suspended")}
            for u in cli.json("admin", "user", "list")["users"]] == [
        {"name": "alice", "is_admin": False, "suspended": False},
        {"name": "carol", "is_admin": True, "suspended": False}]
    out, _ = cli("admin", "user", "list")
    assert "alice" in out and "IS_ADMIN" in out
    _, err = cli("admin", "user", "add", "alice", expect=1)
    assert "already exists" in err and "[conflict]" in err
    _, err = cli("admin", "user", "add", "no way", expect=1)
    assert "user name" in err and "Traceback" not in err
    cli("admin", "user", "remove", "alice")
    _, err = cli("admin", "user", "remove", "alice", expect=1)
    assert "does not exist" in err and "[not_found]" in err
    assert [u["name"] for u in cli.json("admin", "user", "list")["users"]] == ["carol"]


def test_token_issue_and_revoke(cli: Cli, deployment: Path) -> None:
    cli("admin", "user", "add", "alice")
    out, err = cli("admin", "token", "issue", "alice")
    token = out.strip()
    assert token.startswith("lomas_") and "shown once" in err
    assert hash_token(token) not in out + err
    issued = cli.json("admin", "token", "issue", "alice")
    assert issued["user"] == "alice" and issued["token"] != token
    store = make_store(load_config(deployment))
    try:
        user = store.user_for_token(hash_token(token))
        assert user is not None and user.name == "alice"
        out, _ = cli("admin", "token", "revoke", "alice")
        assert "revoked 2 token(s)" in out
        assert store.user_for_token(hash_token(token)) is None
    finally:
        store.close()
    _, err = cli("admin", "token", "issue", "nobody", expect=1)
    assert "nobody" in err
    cli("admin", "token", "revoke", "nobody", expect=1)


def test_dataset_add_resolves_paths_and_validates(cli: Cli, deployment: Path, tmp_path: Path) -> None:
    out, _ = cli("admin", "dataset", "add", str(tmp_path / "small.yaml"))
    assert "added dataset small" in out
    shown = cli.json("admin", "dataset", "show", "small")
    assert shown["options"]["path"] == str((tmp_path / "data" / "small.csv").resolve())
    assert shown["metadata"]["columns"]["x"]["upper"] == 9
    listed = cli.json("admin", "dataset", "list")["datasets"]
    assert listed == [{"name": "small", "id": shown["id"], "adapter": "local",
                       "description": "three rows"}] and shown["id"].startswith("ds_")
    _, err = cli("admin", "dataset", "add", str(tmp_path / "small.yaml"), expect=1)
    assert "already exists" in err
    cli("admin", "dataset", "add", str(tmp_path / "small.yaml"), "--replace")
    out, _ = cli("admin", "dataset", "show", "small")
    assert "adapter: local" in out

    outside = tmp_path / "outside.yaml"
    outside.write_text("name: leak\nadapter: local\noptions: {path: elsewhere/secret.csv}\n"
                       "metadata: data/small_meta.yaml\n")
    _, err = cli("admin", "dataset", "add", str(outside), expect=1)
    assert "outside the directories" in err and "[invalid_request]" in err

    ftp = tmp_path / "ftp.yaml"
    ftp.write_text("name: remote\nadapter: ftp\noptions: {url: 'ftp://x/y.csv'}\n"
                   "metadata: data/small_meta.yaml\n")
    _, err = cli("admin", "dataset", "add", str(ftp), expect=1)
    assert "adapter 'ftp' is not enabled" in err and "local" in err

    no_meta = tmp_path / "nometa.yaml"
    no_meta.write_text("name: nometa\nadapter: local\noptions: {path: data/small.csv}\n")
    _, err = cli("admin", "dataset", "add", str(no_meta), expect=1)
    assert "no metadata" in err

    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    _, err = cli("admin", "dataset", "add", str(broken), expect=1)
    assert "not valid YAML" in err
    _, err = cli("admin", "dataset", "add", str(tmp_path / "missing.yaml"), expect=1)
    assert "cannot read" in err

    assert [d["name"] for d in cli.json("admin", "dataset", "list")["datasets"]] == ["small"]
    cli("admin", "dataset", "remove", "small")
    cli("admin", "dataset", "show", "small", expect=1)


def test_grants_budgets_and_archive(cli: Cli, deployment: Path, tmp_path: Path) -> None:
    cli("admin", "user", "add", "alice")
    cli("admin", "dataset", "add", str(tmp_path / "small.yaml"))
    cli("admin", "grant", "alice", "small", "--epsilon", "1.0", "--delta", "1e-5")
    _, err = cli("admin", "grant", "alice", "small", "--epsilon", "1", expect=1)
    assert "[conflict]" in err
    _, err = cli("admin", "grant", "bob", "small", "--epsilon", "1", expect=1)
    assert "bob" in err and "[not_found]" in err
    for bad in ("abc", "-1", "nan", "inf"):
        _, err = cli("admin", "grant", "alice", "small", "--epsilon", bad, expect=2)
        assert "invalid budget value" in err
    _, err = cli("admin", "budget", "set", "alice", "small", "--epsilon", "1", "--delta", "1", expect=1)
    assert "delta must be below 1" in err

    store = make_store(load_config(deployment))
    try:  # ten charges of 0.1 leave exactly nothing
        for _ in range(10):
            store.charge(ArchiveRecord(user="alice", dataset="small", engine="toy",
                                       request={"q": 1}, cost=Budget.of(0.1)))
    finally:
        store.close()
    shown = cli.json("admin", "budget", "show", "alice", "small")
    grant = shown["grants"][0]
    assert grant["initial"] == {"epsilon": "1.0", "delta": "0.00001"}
    assert Decimal(grant["spent"]["epsilon"]) == 1 and Decimal(grant["remaining"]["epsilon"]) == 0

    updated = cli.json("admin", "budget", "set", "alice", "small", "--epsilon", "20")
    assert updated["initial"] == {"epsilon": "20", "delta": "0.00001"}  # delta kept
    assert Decimal(updated["remaining"]["epsilon"]) == 19
    out, _ = cli("admin", "budget", "show", "alice")
    assert "small" in out and "REMAINING_EPSILON" in out
    cli("admin", "budget", "show", "alice", "other", expect=1)
    cli("admin", "budget", "show", "nobody", expect=1)
    cli("admin", "budget", "set", "alice", "other", "--epsilon", "1", expect=1)

    archive = cli.json("admin", "archive", "show", "alice")["queries"]
    assert len(archive) == 10 and {r["status"] for r in archive} == {"pending"}
    assert archive[0]["epsilon"] == 0.1 and archive[0]["dataset"] == "small"
    assert archive[0]["dataset_id"].startswith("ds_") and archive[0]["user_id"].startswith("usr_")
    assert cli.json("admin", "archive", "show", "alice", "other") == {"queries": []}

    cli("admin", "revoke", "alice", "small")
    cli("admin", "revoke", "alice", "small", expect=1)
    assert cli.json("admin", "budget", "show", "alice")["grants"] == []


def test_plugins_lists_installed_and_enabled(cli: Cli, deployment: Path) -> None:
    plugins = cli.json("plugins")["plugins"]
    by_key = {(p["kind"], p["name"]): p for p in plugins}
    assert by_key[("store", "sqlite")]["enabled"] is True
    assert by_key[("store", "sqlite")]["distribution"] == "lomas-core"
    assert by_key[("adapter", "local")]["enabled"] is True
    out, _ = cli("plugins")
    assert "sqlite" in out and "DISTRIBUTION" in out

    config = yaml.safe_load(deployment.read_text())
    config["engines"] = {"no_such_engine": {}}
    deployment.write_text(yaml.safe_dump(config))
    missing = {(p["kind"], p["name"]): p for p in cli.json("plugins")["plugins"]}
    assert missing[("engine", "no_such_engine")]["distribution"] == "(not installed)"


def test_usage_and_config_errors(cli: Cli, deployment: Path, capsys: pytest.CaptureFixture[str],
                                 tmp_path: Path) -> None:
    assert main([]) == 2
    assert main(["admin"]) == 2
    assert main(["admin", "user", "frobnicate"]) == 2
    assert main(["--help"]) == 0
    capsys.readouterr()
    bad = tmp_path / "bad.yaml"
    bad.write_text("store: {name: sqlite, options: {path: x.db}}\nnonsense: 1\n")
    assert main(["--config", str(bad), "admin", "user", "list"]) == 1
    assert "invalid" in capsys.readouterr().err
    assert main(["admin", "user", "list", "--config", str(tmp_path / "nope.yaml")]) == 1
    assert "cannot read config" in capsys.readouterr().err


def test_config_from_environment(deployment: Path, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOMAS_CONFIG", str(deployment))
    assert main(["admin", "user", "add", "dora"]) == 0
    assert (deployment.parent / "state.db").exists()
    assert main(["admin", "user", "list", "--json"]) == 0
    assert "dora" in capsys.readouterr().out


def test_dataset_check_reports_every_dataset(deployment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli = Cli(deployment, capsys)
    cli("admin", "dataset", "add", str(deployment.parent / "small.yaml"))
    assert cli.json("admin", "dataset", "check")["problems"] == 0
    # The admin narrows the allowed directories: the stored dataset is now outside them.
    raw = yaml.safe_load(deployment.read_text())
    raw["adapters"]["local"]["allowed_dirs"] = ["elsewhere"]
    deployment.write_text(yaml.safe_dump(raw))
    out, _ = cli("admin", "dataset", "check", expect=1)
    assert "small" in out and "error" in out and "allowed_dirs" in out
