"""The ``lomas`` console script as a real process: admin flows, exit codes, ``demo`` + ``serve``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from lomas_core.plugins import installed_plugins

LOMAS = Path(sys.executable).with_name("lomas")
pytestmark = pytest.mark.skipif(not LOMAS.exists(), reason="the lomas console script is not installed")


def lomas(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
          timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LOMAS), *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_console_script_admin_flow_and_exit_codes(tmp_path: Path) -> None:
    config = tmp_path / "lomas.yaml"
    config.write_text(yaml.safe_dump({"store": {"name": "sqlite", "options": {"path": "s.db"}}}))
    env = {**os.environ, "LOMAS_CONFIG": str(config)}
    missing = lomas("admin", "user", "add", "alice", env=env)  # no store yet: refused, not created
    assert missing.returncode == 1 and "lomas admin init" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1 and not (tmp_path / "s.db").exists()
    served = lomas("serve", env=env)
    assert served.returncode == 1 and "does not exist" in served.stderr
    assert len(served.stderr.strip().splitlines()) == 1
    assert lomas("admin", "init", env=env).returncode == 0
    assert "already exists" in lomas("admin", "init", env=env).stdout
    assert lomas("admin", "user", "add", "alice", env=env).returncode == 0
    issued = lomas("admin", "token", "issue", "alice", env=env)
    assert issued.returncode == 0 and issued.stdout.strip().startswith("lomas_")
    listed = lomas("admin", "user", "list", "--json", env=env)
    [alice] = json.loads(listed.stdout)["users"]
    assert alice["name"] == "alice" and not alice["is_admin"] and not alice["suspended"]
    assert alice["id"].startswith("usr_")  # the immutable identity

    dup = lomas("admin", "user", "add", "alice", env=env)
    assert dup.returncode == 1 and "already exists" in dup.stderr and "Traceback" not in dup.stderr
    bad = lomas("admin", "grant", "alice", "ds", "--epsilon", "lots", env=env)
    assert bad.returncode == 2 and "invalid budget value" in bad.stderr
    assert lomas("admin", "budget", env=env).returncode == 2
    version = lomas("--version", env=env)
    assert version.returncode == 0 and "lomas" in version.stdout


def test_demo_then_serve_answers_queries(tmp_path: Path) -> None:
    port = _free_port()
    demo_dir = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k != "LOMAS_CONFIG"}
    made = lomas("demo", "--dir", str(demo_dir), "--port", str(port), env=env)
    assert made.returncode == 0, made.stderr
    token = (demo_dir / "token").read_text().strip()
    assert token in made.stdout and "from lomas_client import Client" in made.stdout
    assert oct((demo_dir / "token").stat().st_mode & 0o777) == "0o600"
    again = lomas("demo", "--dir", str(demo_dir), "--port", str(port), env=env)  # idempotent
    assert again.returncode == 0, again.stderr
    old_token, token = token, (demo_dir / "token").read_text().strip()
    assert old_token != token

    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([str(LOMAS), "serve", "--config", str(demo_dir / "lomas.yaml")],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.1)
        headers = {"Authorization": f"Bearer {token}"}
        meta = httpx.get(f"{url}/v1/datasets/penguins/metadata", headers=headers, timeout=10).json()
        assert meta["rows"] == 344 and set(meta["columns"]) >= {"species", "sex", "body_mass_g"}
        budget = httpx.get(f"{url}/v1/datasets/penguins/budget", headers=headers, timeout=10).json()
        assert budget["initial"] == {"epsilon": 10.0, "delta": 0.0001}
        dummy = httpx.post(f"{url}/v1/datasets/penguins/dummy", json={"rows": 5}, headers=headers,
                           timeout=30)
        assert dummy.status_code == 200 and len(dummy.json()["rows"]) == 5
        still_valid = httpx.get(f"{url}/v1/datasets/penguins/budget",
                            headers={"Authorization": f"Bearer {old_token}"}, timeout=10)
        assert still_valid.status_code == 200  # earlier demo tokens stay valid until revoked
        if any(p.kind == "engine" and p.name == "smartnoise_sql" for p in installed_plugins()):
            answer = httpx.post(f"{url}/v1/datasets/penguins/query", headers=headers, timeout=60, json={
                "engine": "smartnoise_sql",
                "query": {"sql": "SELECT COUNT(*) AS n FROM df", "epsilon": 1.0, "delta": 1e-5}})
            assert answer.status_code == 200, answer.text
            assert answer.json()["remaining"]["epsilon"] < 10.0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
