"""A MongoDB for tests: ``$MONGODB_URI`` when set, else a throw-away nx-27017 server.

nx-27017 (PyPI) speaks the MongoDB wire protocol on top of SQLite. :func:`running_mongodb` starts
it on a free 127.0.0.1 port with a temporary data directory, waits until it answers ``ping`` and
stops it afterwards. Tests should use a fresh database per test (:func:`fresh_database_name`) so
that they can share one server, including a real one from ``$MONGODB_URI``.

Pytest fixtures (import them into a ``conftest.py``)::

    from lomas_testsupport.mongo import mongodb_uri, mongodb_database  # noqa: F401
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

__all__ = [
    "MongoServer",
    "drop_database",
    "fresh_database_name",
    "mongodb_database",
    "mongodb_uri",
    "running_mongodb",
    "start_nx27017",
]

ENV_VAR = "MONGODB_URI"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _nx_command() -> list[str]:
    script = Path(sys.executable).with_name("nx-27017")
    if script.exists():
        return [str(script)]
    found = shutil.which("nx-27017")
    if found:
        return [found]
    return [sys.executable, "-c", "from nx_27017.nx_27017 import main; main()"]


def _ping(uri: str, timeout_ms: int = 500) -> bool:
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    client: MongoClient[dict[str, object]] = MongoClient(
        uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms)
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


class MongoServer:
    """A running nx-27017 subprocess."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, workdir: Path) -> None:
        self.process = process
        self.port = port
        self.workdir = workdir
        self.uri = f"mongodb://127.0.0.1:{port}/"

    def log_tail(self, chars: int = 2000) -> str:
        log = self.workdir / "nx.log"
        return log.read_text(errors="replace")[-chars:] if log.exists() else ""

    def stop(self, *, remove_data: bool = True) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after 5 s); remove its data unless told not to."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if remove_data:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self, timeout: float = 30.0) -> None:
        """Start again on the same port with the same data (after :meth:`stop` ``remove_data=False``)."""
        self.stop(remove_data=False)
        self.process = _spawn(self.workdir, self.port)
        if not _wait_ready(self, timeout):
            raise RuntimeError(f"nx-27017 did not restart:\n{self.log_tail()}")


def _spawn(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    cmd = [*_nx_command(), "--data-dir", str(workdir / "data"), "--host", "127.0.0.1",
           "--port", str(port), "--log-file", str(workdir / "nx.log"),
           "--pid-file", str(workdir / "nx.pid")]
    with open(workdir / "stdout.log", "ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=workdir,
                                start_new_session=True)


def _wait_ready(server: MongoServer, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.process.poll() is None:
        if _ping(server.uri):
            return True
        time.sleep(0.1)
    return False


def start_nx27017(workdir: Path | None = None, *, timeout: float = 30.0, attempts: int = 3) -> MongoServer:
    """Start nx-27017 on a free port and wait until it answers ``ping``.

    Raises:
        RuntimeError: the server did not come up (with the end of its log).
    """
    last_error = ""
    for _ in range(attempts):
        wd = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="lomas-nx27017-"))
        wd.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        server = MongoServer(_spawn(wd, port), port, wd)
        if _wait_ready(server, timeout):
            return server
        last_error = server.log_tail() or (wd / "stdout.log").read_text(errors="replace")[-2000:]
        server.stop()
        workdir = None  # retry in a fresh directory, on a fresh port
    raise RuntimeError(f"nx-27017 did not start:\n{last_error}")


@contextmanager
def running_mongodb() -> Iterator[str]:
    """Yield a MongoDB URI: ``$MONGODB_URI`` if set, else a temporary nx-27017 server's."""
    env_uri = os.environ.get(ENV_VAR)
    if env_uri:
        yield env_uri
        return
    server = start_nx27017()
    try:
        yield server.uri
    finally:
        server.stop()


def fresh_database_name(prefix: str = "lomas_test") -> str:
    """A database name no other test uses."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def drop_database(uri: str, name: str) -> None:
    """Best-effort removal of a test database."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    client: MongoClient[dict[str, object]] = MongoClient(uri, serverSelectionTimeoutMS=2000)
    try:
        client.drop_database(name)
    except PyMongoError:
        pass
    finally:
        client.close()


@pytest.fixture(scope="session")
def mongodb_uri() -> Iterator[str]:
    """Session-wide MongoDB URI (``$MONGODB_URI`` or a temporary nx-27017)."""
    with running_mongodb() as uri:
        yield uri


@pytest.fixture
def mongodb_database(mongodb_uri: str) -> Iterator[str]:
    """A fresh database name on :func:`mongodb_uri`, dropped after the test."""
    name = fresh_database_name()
    yield name
    drop_database(mongodb_uri, name)
