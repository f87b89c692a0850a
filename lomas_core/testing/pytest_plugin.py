"""pytest plugin of lomas (entry point ``pytest11: lomas``): harness fixtures for plugin authors.

Example::

    def test_engine(lomas_harness):
        h = lomas_harness(engines={"myengine": {}})
        token = h.add_user("alice")
        with h.client(token) as c:
            assert c.get("/v1/datasets").status_code == 200

Also adds ``--run-slow``: tests marked ``@pytest.mark.slow`` are skipped unless it is given.

Kept cheap to import: the harness (and FastAPI) load only when a fixture is used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from lomas_core.testing.harness import LomasHarness

__all__ = ["lomas_harness", "lomas_postgres", "pytest_addoption", "pytest_collection_modifyitems"]


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--run-slow`` opts in to tests marked ``@pytest.mark.slow`` (skipped by default)."""
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="run tests marked slow (heavy statistical checks)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow", default=False):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def lomas_harness(tmp_path: Path) -> Iterator[Callable[..., LomasHarness]]:
    """A factory of :class:`~lomas_core.testing.harness.LomasHarness` objects in ``tmp_path``.

    Keyword arguments go to ``LomasHarness``; every harness is closed after the test.
    """
    from lomas_core.testing.harness import LomasHarness

    made: list[LomasHarness] = []

    def factory(**kwargs: Any) -> LomasHarness:
        harness = LomasHarness(tmp_path / f"lomas-{len(made)}", **kwargs)
        made.append(harness)
        return harness

    yield factory
    for harness in made:
        harness.close()


@pytest.fixture(scope="session")
def lomas_postgres() -> Iterator[Any]:
    """A real PostgreSQL server for the session (:class:`~lomas_core.testing.postgres.PostgresServer`)
    with a read-only login role ``lomas_reader`` (its connection string: ``reader_dsn``).

    Skips, saying why, when PostgreSQL's server binaries are not installed.
    """
    from lomas_core.testing.postgres import PostgresServer, create_reader, find_postgres

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
