"""The rendered lomas-server pod really runs: its init step and server container, executed here with
the rendered ConfigMap, Secrets and environment against a real MongoDB wire server (nx-27017 or
``$MONGODB_URI``), as Kubernetes would run them (minus the container)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from chart_render import Render, Rendered
from k8s_checks import secret_data

from lomas_core.config import load_config
from lomas_core.models import User
from lomas_core.plugins import make_store
from lomas_core.store import BudgetStore
from lomas_core.tokens import hash_token
from lomas_testsupport.mongo import mongodb_database, mongodb_uri  # noqa: F401 - fixtures

pytest.importorskip("lomas_store_mongodb")

CHART = "lomas-server"
FULLNAME = "lomas-lomas-server"
ADMIN_TOKEN = "lomas_s3cr3tBootstrapToken0123456789abcdefghijk"
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


class Pod:
    """The rendered server pod's files and containers, runnable on this machine."""

    def __init__(self, rendered: Rendered, workdir: Path) -> None:
        self.rendered = rendered
        self.workdir = workdir
        data = rendered.get("ConfigMap", FULLNAME)["data"]
        self.config_path = workdir / "lomas.yaml"
        self.config_path.write_text(data["lomas.yaml"])
        (workdir / "bootstrap_admin.py").write_text(data["bootstrap_admin.py"])
        spec = rendered.get("Deployment", FULLNAME)["spec"]["template"]["spec"]
        self.containers = {c["name"]: c for c in spec["containers"] + spec.get("initContainers", [])}

    def _env(self, container: dict[str, Any]) -> dict[str, str]:
        secrets = secret_data(self.rendered.docs)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOMAS_")}
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), item["value"])
            else:
                ref = item["valueFrom"]["secretKeyRef"]
                env[item["name"]] = secrets[ref["name"]][ref["key"]]
        return env

    def command(self, name: str, *extra: str) -> tuple[list[str], dict[str, str]]:
        container = self.containers[name]
        local = {"python": sys.executable, "lomas": str(Path(sys.executable).with_name("lomas")),
                 "/etc/lomas/lomas.yaml": str(self.config_path),
                 "/etc/lomas/bootstrap/bootstrap_admin.py": str(self.workdir / "bootstrap_admin.py")}
        argv = [local.get(a, a) for a in container["command"] + container.get("args", [])]
        return argv + list(extra), self._env(container)

    def run(self, name: str) -> subprocess.CompletedProcess[str]:
        argv, env = self.command(name)
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


def _values(uri: str, database: str, **store_options: Any) -> dict[str, Any]:
    return {"mongodb": {"enabled": False},
            "externalMongodb": {"enabled": True, "uri": uri},
            "bootstrapAdmin": {"token": ADMIN_TOKEN, "waitSeconds": 1},
            "config": {"store": {"options": {"database": database, **store_options}},
                       "adapters": {"local": {"allowed_dirs": ["/tmp"]}}}}


@pytest.fixture
def pod(helm_template: Render, mongodb_uri: str, mongodb_database: str, tmp_path: Path) -> Pod:  # noqa: F811
    return Pod(helm_template(CHART, _values(mongodb_uri, mongodb_database)), tmp_path)


@contextmanager
def open_store(pod: Pod) -> Iterator[BudgetStore]:
    """The pod's budget store, opened here with the pod's config and MongoDB URI."""
    env = pod.command("server")[1]
    old = os.environ.get("LOMAS_MONGO_URI")
    os.environ["LOMAS_MONGO_URI"] = env["LOMAS_MONGO_URI"]
    try:
        store = make_store(load_config(pod.config_path), create=True)  # as `lomas admin init`
        try:
            yield store
        finally:
            store.close()
    finally:
        if old is None:
            del os.environ["LOMAS_MONGO_URI"]
        else:
            os.environ["LOMAS_MONGO_URI"] = old


def _admins(pod: Pod) -> list[str]:
    with open_store(pod) as store:
        owner = store.user_for_token(hash_token(ADMIN_TOKEN))
        assert owner is not None and owner.name == "admin" and owner.is_admin
        return [u.name for u in store.list_users() if u.is_admin]


def test_init_step_creates_the_first_admin_once(pod: Pod) -> None:
    first = pod.run("bootstrap-admin")
    assert first.returncode == 0, first.stderr
    assert ADMIN_TOKEN not in first.stdout + first.stderr
    assert "admin user 'admin' has the bootstrap token" in first.stdout
    assert _admins(pod) == ["admin"]
    again = pod.run("bootstrap-admin")
    assert again.returncode == 0, again.stderr
    assert _admins(pod) == ["admin"]


def test_init_step_refuses_an_existing_non_admin_user(pod: Pod) -> None:
    with open_store(pod) as store:
        store.add_user(User(name="admin", is_admin=False))
    done = pod.run("bootstrap-admin")
    assert done.returncode == 1
    assert "exists and is not an admin" in done.stderr
    assert "waiting" not in done.stderr  # final at once, not retried


def test_server_container_serves_with_the_rendered_config(pod: Pod) -> None:
    assert pod.run("bootstrap-admin").returncode == 0
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv, env = pod.command("server", "--host", "127.0.0.1", "--port", str(port))
    log = pod.workdir / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server not healthy:\n" + log.read_text()
            time.sleep(0.1)
        users = httpx.get(f"{url}/v1/admin/users", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert users.status_code == 200, users.text
        assert "admin" in users.text
        plugins = httpx.get(f"{url}/v1/admin/plugins", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert plugins.status_code == 200 and "opendp" in plugins.text
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_init_step_gives_up_clearly_when_the_store_never_answers(helm_template: Render,
                                                                  tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = f"mongodb://lomas:s3cr3t-unreachable@127.0.0.1:{port}/?authSource=admin"
    pod = Pod(helm_template(CHART, _values(uri, "lomas", server_selection_timeout_ms=200,
                                           connect_timeout_ms=200)), tmp_path)
    done = pod.run("bootstrap-admin")
    assert done.returncode == 1
    assert "did not answer" in done.stderr
    assert "s3cr3t-unreachable" not in done.stderr and ADMIN_TOKEN not in done.stderr
    assert "Traceback" not in done.stderr
