"""pytest settings of this repository only (not shipped with lomas-core).

``lomas_postgres`` is a real PostgreSQL server for the session (tests of the push-down sources).
``--run-slow`` opts in to tests marked ``@pytest.mark.slow`` (heavy statistical checks), which are
skipped by default here. Installing lomas-core changes nothing in other projects' test runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="run tests marked slow (heavy statistical checks)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def lomas_postgres() -> Iterator[Any]:
    """A real PostgreSQL server for the session (:class:`~lomas_testsupport.postgres.PostgresServer`)
    with a read-only login role ``lomas_reader`` (its connection string: ``reader_dsn``).

    Skips, saying why, when PostgreSQL's server binaries are not installed.
    """
    from lomas_testsupport.postgres import PostgresServer, create_reader, find_postgres

    folder, reason = find_postgres()
    if folder is None:
        pytest.skip(f"no PostgreSQL server available: {reason}")
    server = PostgresServer()
    password = "reader-" + server.password
    create_reader(server.dsn(), "lomas_reader", password)
    server.reader_dsn = server.dsn("lomas_reader", password)  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.close()
