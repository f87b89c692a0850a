"""Parametrizes the engine audit classes (``engine_audit.EngineAudit``) over their catalogues."""

from __future__ import annotations

import pytest


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    catalogue = getattr(metafunc.cls, "catalogue", None)
    if catalogue is not None and "name" in metafunc.fixturenames:
        metafunc.parametrize("name", [q.name for q in catalogue()])
