"""A real, throw-away PostgreSQL server for tests (Debian's ``postgresql`` package).

:class:`PostgresServer` runs ``initdb`` and ``pg_ctl`` on a free loopback port with a private
socket folder in a fresh temporary directory, as the ``postgres`` user when the tests run as root
(PostgreSQL refuses to run as root). :func:`find_postgres` says why none can be started, for a
clear skip: `.ci/run` installs the package where apt-get is available.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

__all__ = ["PostgresServer", "create_reader", "find_postgres", "load_table"]


def _bin_dir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                        key=lambda p: int(Path(p).parent.parent.name)
                        if Path(p).parent.parent.name.isdigit() else 0)
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and shutil.which("initdb") else None


def find_postgres() -> tuple[Path | None, str]:
    """(the folder holding initdb and pg_ctl, or None; the reason when None)."""
    folder = _bin_dir()
    if folder is None:
        return None, "PostgreSQL's initdb/pg_ctl are not installed (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return None, "running as root and there is no 'postgres' user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return None, "running as root without runuser to start PostgreSQL as 'postgres'"
    return folder, ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """A PostgreSQL server on 127.0.0.1:``port``; superuser ``postgres`` with a password."""

    def __init__(self) -> None:
        folder, reason = find_postgres()
        if folder is None:
            raise RuntimeError(reason)
        self.bin = folder
        self.root = Path(tempfile.mkdtemp(prefix="lomas-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sock"
        self.sockets.mkdir()
        self.port = _free_port()
        self.password = "lomas-test-" + os.urandom(6).hex()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.sockets, "postgres")
        pwfile = self.root / "pw"
        pwfile.write_text(self.password)
        if self._as_postgres:
            shutil.chown(pwfile, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=scram-sha-256",
                  f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C")
        pwfile.unlink()
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                   f"-c unix_socket_directories={self.sockets} -c fsync=off "
                   "-c shared_buffers=64MB -c max_connections=40")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l",
                  str(self.root / "log"), "-w", "-t", "60", "start")

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def dsn(self, user: str = "postgres", password: str | None = None,
            dbname: str = "postgres") -> str:
        """A libpq connection string for ``user``."""
        secret = self.password if password is None else password
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={user} password={secret}"

    def close(self) -> None:
        """Stop the server and remove its files."""
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        except (subprocess.SubprocessError, OSError):
            pass
        shutil.rmtree(self.root, ignore_errors=True)




def _pg_type(arrow_type: object) -> str:
    import pyarrow.types as t

    if t.is_integer(arrow_type):
        return "bigint"
    if t.is_floating(arrow_type):
        return "double precision"
    if t.is_boolean(arrow_type):
        return "boolean"
    if t.is_timestamp(arrow_type):
        return "timestamp"
    return "text"


def load_table(dsn: str, name: str, table: object, *, reader: str | None = None) -> None:
    """(Re)create table ``public.<name>`` from a ``pyarrow.Table`` and grant ``reader`` SELECT."""
    import psycopg
    from psycopg import sql

    columns = table.schema  # type: ignore[attr-defined]
    with psycopg.connect(dsn, autocommit=True) as conn:
        ident = sql.Identifier("public", name)
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(ident, sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(_pg_type(f.type)))
            for f in columns)))
        with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(ident)) as copy:
            for row in table.to_pylist():  # type: ignore[attr-defined]
                copy.write_row(tuple(row.values()))
        if reader is not None:
            conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(ident, sql.Identifier(reader)))


def create_reader(dsn: str, user: str, password: str) -> None:
    """A login role that can only read the tables it is granted, read-only by default."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [user]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(user), sql.Literal(password)))
        conn.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(
            sql.Identifier(user)))
