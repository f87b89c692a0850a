"""First-hour papercuts of the ``lomas`` command (issue: a smooth first hour)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lomas_core.cli import main

METADATA = {"max_ids": 1, "rows": 3, "columns": {"x": {"type": "int", "lower": 0, "upper": 9}}}


def _deployment(tmp_path: Path, engines: dict[str, dict[str, object]]) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "small.csv").write_text("x\n1\n2\n3\n")
    config = tmp_path / "lomas.yaml"
    config.write_text(yaml.safe_dump({
        "store": {"name": "sqlite", "options": {"path": "state.db"}},
        "adapters": {"local": {"allowed_dirs": ["data"]}}, "engines": engines}))
    (tmp_path / "small.yaml").write_text(
        "name: small\nadapter: local\noptions: {path: data/small.csv}\n"
        f"metadata: {METADATA!r}\n".replace("'", '"'))
    c = str(config)
    assert main(["admin", "init", "--config", c]) == 0
    assert main(["admin", "user", "add", "bob", "--config", c]) == 0
    assert main(["admin", "dataset", "add", str(tmp_path / "small.yaml"), "--config", c]) == 0
    return config


@pytest.mark.parametrize("engines,warned", [({"smartnoise_sql": {}}, True), ({}, False)])
def test_grant_without_delta_warns_when_smartnoise_is_enabled(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        engines: dict[str, dict[str, object]], warned: bool) -> None:
    monkeypatch.delenv("LOMAS_CONFIG", raising=False)
    config = _deployment(tmp_path, engines)
    capsys.readouterr()
    assert main(["admin", "grant", "bob", "small", "--epsilon", "1", "--config", str(config)]) == 0
    err = capsys.readouterr().err
    assert ("cannot run SmartNoise-SQL" in err) is warned
    if warned:
        assert "cost()" in err and "1.5x" in err
    assert main(["admin", "user", "add", "carol", "--config", str(config)]) == 0
    assert main(["admin", "grant", "carol", "small", "--epsilon", "1", "--delta", "1e-4",
                 "--config", str(config)]) == 0
    assert "SmartNoise" not in capsys.readouterr().err


def test_serve_with_an_unknown_engine_fails_in_one_line(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    config = _deployment(tmp_path, {"no_such_engine": {}})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "LOMAS_CONFIG"}
    run = subprocess.run([sys.executable, "-m", "lomas_core.cli", "serve", "--config", str(config),
                          "--port", str(port)], capture_output=True, text=True, timeout=120,
                         env=env)
    assert run.returncode == 3, run.stderr
    assert "no_such_engine" in run.stderr and "start-up failed" in run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert run.stderr.count("not available") == 1 and len(run.stderr.strip().splitlines()) <= 5, run.stderr


def test_builtin_defaults_are_announced_and_no_store_appears(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOMAS_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["admin", "user", "list"]) == 1
    err = capsys.readouterr().err
    assert "no --config and no LOMAS_CONFIG: using the built-in defaults" in err
    assert err.count("built-in defaults") == 1
    assert not (tmp_path / "lomas.db").exists()


def test_demo_reset_restores_the_budget_and_revokes_old_tokens(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from lomas_core.budget import Budget
    from lomas_core.cli.demo import write_demo
    from lomas_core.config import load_config
    from lomas_core.models import ArchiveRecord
    from lomas_core.plugins import make_store
    from lomas_core.tokens import hash_token

    monkeypatch.delenv("LOMAS_CONFIG", raising=False)
    first = write_demo(tmp_path / "demo")
    store = make_store(load_config(first["config"]))
    try:
        store.charge(ArchiveRecord(user="alice", dataset="penguins", engine="toy", request={},
                                   cost=Budget.of("1", "0")))
        second = write_demo(tmp_path / "demo")
        assert second["refreshed"]
        assert store.get_grant("alice", "penguins").spent == Budget.of("1", "0")
        assert store.user_for_token(hash_token(first["token"])) is not None
        capsys.readouterr()
        assert main(["demo", "--dir", str(tmp_path / "demo"), "--reset"]) == 0
        assert "full budget again" in capsys.readouterr().err
        assert store.get_grant("alice", "penguins").spent.is_zero()
        assert store.user_for_token(hash_token(first["token"])) is None
        assert store.user_for_token(hash_token(second["token"])) is None
    finally:
        store.close()
