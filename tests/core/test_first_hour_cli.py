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
