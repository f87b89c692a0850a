"""``lomas admin import`` and ``lomas admin copy`` on real SQLite stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lomas_core.budget import Budget
from lomas_core.cli import main
from lomas_core.config import load_config
from lomas_core.models import ArchiveRecord
from lomas_core.plugins import make_store
from lomas_core.tokens import hash_token

METADATA = {"max_ids": 1, "rows": 3, "columns": {"x": {"type": "int", "lower": 0, "upper": 9}}}


def _config(folder: Path, db: str) -> Path:
    path = folder / f"{db}.yaml"
    path.write_text(yaml.safe_dump({
        "store": {"name": "sqlite", "options": {"path": f"{db}.db"}},
        "adapters": {"local": {"allowed_dirs": ["data"]}}}))
    return path


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("LOMAS_CONFIG", raising=False)
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("x\n1\n2\n")
    (data / "b.csv").write_text("x\n3\n")
    (data / "meta.yaml").write_text(yaml.safe_dump(METADATA))
    (tmp_path / "b.yaml").write_text("name: b\noptions: {path: data/b.csv}\nmetadata: data/meta.yaml\n")
    config = _config(tmp_path, "main")
    assert main(["admin", "init", "--config", str(config)]) == 0
    return config


def _write_import(tmp_path: Path, grant_epsilon: float | str = 10) -> Path:
    path = tmp_path / "import.yaml"
    path.write_text(yaml.safe_dump({
        "users": ["alice", {"name": "carol", "admin": True}],
        "datasets": ["b.yaml", {"name": "a", "adapter": "local", "options": {"path": "data/a.csv"},
                                "metadata": METADATA}],
        "grants": [{"user": "alice", "dataset": "a", "epsilon": grant_epsilon, "delta": "1e-5"},
                   {"user": "alice", "dataset": "b", "epsilon": 0.5}]}))
    return path


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def test_import_is_validated_idempotent_and_replaceable(setup: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    file = _write_import(tmp_path)
    rc, out, _ = _run(capsys, "admin", "import", str(file), "--config", str(setup), "--dry-run")
    assert rc == 0 and "nothing written" in out
    rc, out, err = _run(capsys, "admin", "import", str(file), "--config", str(setup), "--issue-tokens")
    assert rc == 0, err
    assert out.count("created:") == 6
    tokens = dict(line.split()[1:3] for line in out.splitlines() if line.strip().startswith("token:"))
    assert set(tokens) == {"alice", "carol"}

    store = make_store(load_config(setup))
    try:
        user = store.user_for_token(hash_token(tokens["carol"]))
        assert user is not None and user.is_admin
        grant = store.get_grant("alice", "a")
        assert grant is not None and grant.initial == Budget.of("10", "0.00001")
        assert store.get_dataset("b").options["path"] == str((tmp_path / "data" / "b.csv").resolve())

        rc, out, _ = _run(capsys, "admin", "import", str(file), "--config", str(setup))
        assert rc == 0 and out.count("unchanged:") == 6 and "created" not in out

        changed = _write_import(tmp_path, grant_epsilon="12.5")
        rc, _, err = _run(capsys, "admin", "import", str(changed), "--config", str(setup))
        assert rc == 1 and "grant alice/a exists" in err and "--replace" in err
        rc, out, _ = _run(capsys, "admin", "import", str(changed), "--config", str(setup), "--replace")
        assert rc == 0 and "updated: grant alice/a" in out
        grant = store.get_grant("alice", "a")
        assert grant is not None and grant.initial.epsilon == Budget.of("12.5").epsilon
    finally:
        store.close()


@pytest.mark.parametrize(("doc", "message"), [
    ({"grants": [{"user": "ghost", "dataset": "a", "epsilon": 1}]}, "user 'ghost' does not exist"),
    ({"users": ["alice"], "grants": [{"user": "alice", "dataset": "a", "epsilon": -1}]},
     "invalid budget"),
    ({"users": ["alice"], "grants": [{"user": "alice", "epsilon": 1}]}, "grants[0]"),
    ({"users": ["alice", "alice"]}, "listed twice"),
    ({"users": [{"name": "x", "role": "boss"}]}, "users[0]"),
    ({"datasets": [{"name": "z", "options": {"path": "/etc/passwd", "format": "csv"},
                    "metadata": METADATA}]}, "outside the directories"),
    ({"datasets": ["missing.yaml"]}, "cannot read"),
    ({"people": []}, "must be a mapping with users"),
])
def test_import_errors_write_nothing(setup: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     doc: dict[str, object], message: str) -> None:
    file = tmp_path / "bad_import.yaml"
    # a valid first part, so a partial write would show
    full = {"users": ["zed"], **doc} if "users" not in doc and "people" not in doc else doc
    file.write_text(yaml.safe_dump(full))
    rc, _, err = _run(capsys, "admin", "import", str(file), "--config", str(setup))
    assert rc == 1 and message in err, err
    rc, out, _ = _run(capsys, "admin", "user", "list", "--json", "--config", str(setup))
    assert json.loads(out) == {"users": []}


def test_copy_between_two_sqlite_stores(setup: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "admin", "import", str(_write_import(tmp_path)), "--config", str(setup),
                "--issue-tokens")[0] == 0
    source = make_store(load_config(setup))
    try:
        source.charge(ArchiveRecord(user="alice", dataset="a", engine="toy", request={},
                                    cost=Budget.of("0.3")))
        expected = source.export_state()
    finally:
        source.close()
    target_config = _config(tmp_path, "copy")
    rc, out, err = _run(capsys, "admin", "copy", "--to", str(target_config), "--config", str(setup))
    assert rc == 0, err
    assert "2 users, 2 tokens, 2 datasets, 2 grants, 1 archive" in out
    target = make_store(load_config(target_config))
    try:
        assert target.export_state() == expected
        grant = target.get_grant("alice", "a")
        assert grant is not None and grant.spent.epsilon == Budget.of("0.3").epsilon
    finally:
        target.close()
    rc, _, err = _run(capsys, "admin", "copy", "--to", str(target_config), "--config", str(setup))
    assert rc == 1 and "[conflict]" in err
    rc, _, err = _run(capsys, "admin", "copy", "--config", str(setup))
    assert rc == 2


def _log(config: Path) -> list[dict[str, object]]:
    store = make_store(load_config(config))
    try:
        return [e.view() for e in store.list_admin_events(limit=1000)[0]]
    finally:
        store.close()


def test_dataset_import_and_copy_are_in_the_admin_log(setup: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    config = setup
    assert _run(capsys, "admin", "import", str(_write_import(tmp_path)), "--issue-tokens",
                "--config", str(config))[0] == 0
    rc, out, _ = _run(capsys, "admin", "dataset", "remove", "b", "--config", str(config))
    assert rc == 0
    assert _run(capsys, "admin", "dataset", "add", str(tmp_path / "b.yaml"), "--config",
                str(config))[0] == 0
    events = _log(config)
    assert [(e["action"], e["target"]) for e in events] == [
        ("user.add", "user:alice"), ("user.add", "user:carol"), ("dataset.put", "dataset:b"),
        ("dataset.put", "dataset:a"), ("grant.add", "grant:alice/a"), ("grant.add", "grant:alice/b"),
        ("token.issue", "user:alice"), ("token.issue", "user:carol"),
        ("dataset.remove", "dataset:b"), ("dataset.put", "dataset:b")]
    assert all(str(e["actor"]).startswith("cli:") for e in events)
    first_b, removed, second_b = events[2]["after"], events[8]["before"], events[9]["after"]
    assert isinstance(first_b, dict) and isinstance(removed, dict) and isinstance(second_b, dict)
    # The re-added dataset is another one: the log tells them apart by id.
    assert first_b["id"] == removed["id"] and second_b["id"] != first_b["id"]
    assert removed["id"] in out
    grant_b = events[5]["after"]
    assert isinstance(grant_b, dict) and grant_b["dataset_id"] == first_b["id"]
    target = _config(tmp_path, "copy")
    assert _run(capsys, "admin", "copy", "--to", str(target), "--config", str(config))[0] == 0
    copied = _log(target)
    assert [e["action"] for e in copied] == ["state.copy"]  # the source's log is not copied
    after = copied[0]["after"]
    assert isinstance(after, dict) and after["users"] == 2 and after["datasets"] == 2
