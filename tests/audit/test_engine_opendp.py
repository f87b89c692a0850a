"""The privacy audit of the OpenDP engine with its built-in catalogue (see engine_audit.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("lomas_engine_opendp")

from engine_audit import EngineAudit  # noqa: E402


class TestOpenDPAudit(EngineAudit):
    engine = "opendp"
    fast_samples = 1000
    full_samples = 5000
