"""``lomas audit``: the table on stdout, progress on stderr, exit 1 on a failed audit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lomas_core.cli import main
from lomas_core.testing.privacy_audit.planted import planted_plugin_dir


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    plugins = planted_plugin_dir(tmp_path / "plugins")
    queries = tmp_path / "queries.yaml"
    queries.write_text(yaml.safe_dump([{"name": "noisy count", "query": {"epsilon": 1.0},
                                        "stat": True}]))
    return plugins, queries


def _audit(engine: str, plugins: Path, queries: Path, *extra: str) -> list[str]:
    return ["audit", engine, "--queries", str(queries), "--plugin-path", str(plugins),
            "--samples", "1500", *extra]


def test_honest_engine_passes(setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_audit("honest_count", *setup)) == 0
    out, err = capsys.readouterr()
    assert "MEASURED EPS LB" in out and "noisy count" in out and "verdict: PASS" in out
    assert "server checks" in err and "epsilon lower bound" in err  # progress on stderr


def test_under_noised_engine_fails_with_exit_1(setup: tuple[Path, Path],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_audit("audit_undernoised", *setup, "--json")) == 1
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["ok"] is False and report["queries"][0]["verdict"] == "FAIL"
    assert report["queries"][0]["epsilon_lb"] > 1.0
    assert "failed the privacy audit" in err


def test_peeking_cost_fails(setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_audit("audit_peeking_cost", *setup, "--quiet")) == 1
    out, err = capsys.readouterr()
    assert "cost: the answer differs between D and D'" in out
    assert "server checks" not in err  # --quiet: no progress


def test_engine_without_builtin_catalogue_needs_queries(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "myengine"]) == 2
    assert "give --queries FILE" in capsys.readouterr().err


def test_config_names_the_engine_options(setup: tuple[Path, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "lomas.yaml"
    config.write_text(yaml.safe_dump({"engines": {"honest_count": {}}}))
    plugins, queries = setup
    args = _audit("honest_count", plugins, queries, "--config", str(config), "--samples", "200")
    assert main(args) == 0
