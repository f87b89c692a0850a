"""pytest settings of this repository only (not shipped with lomas-core).

``--run-slow`` opts in to tests marked ``@pytest.mark.slow`` (heavy statistical checks), which are
skipped by default here. Installing lomas-core changes nothing in other projects' test runs.
"""

from __future__ import annotations

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
