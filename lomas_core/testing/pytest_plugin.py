"""pytest plugin of lomas (entry point ``pytest11: lomas``): harness fixtures for plugin authors.

Example::

    def test_engine(lomas_harness):
        h = lomas_harness(engines={"myengine": {}})
        token = h.add_user("alice")
        with h.client(token) as c:
            assert c.get("/v1/datasets").status_code == 200

It changes nothing else in a test run (this repository's ``--run-slow`` option lives in its own
``conftest.py``).

Kept cheap to import: the harness (and FastAPI) load only when a fixture is used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from lomas_core.testing.harness import LomasHarness

__all__ = ["lomas_harness"]


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
