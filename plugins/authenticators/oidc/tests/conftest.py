"""A loopback OpenID provider per test module, and a lomas harness that trusts it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lomas_authenticator_oidc.testing import LoopbackProvider

from lomas_core.testing.harness import LomasHarness


@pytest.fixture
def idp() -> Iterator[LoopbackProvider]:
    with LoopbackProvider(audience="lomas", interval=0.01) as provider:
        yield provider


def _oidc_harness(tmp_path: Path, idp: LoopbackProvider, **options: Any) -> LomasHarness:
    """A harness with ``authenticators: {oidc: ..., token: {}}`` trusting ``idp``."""
    oidc = {"issuer": idp.issuer, "audience": "lomas", "jwks_min_refresh_seconds": 0, **options}
    return LomasHarness(tmp_path, engines={"toy_count": {}},
                        authenticators={"oidc": oidc, "token": {}})


@pytest.fixture
def h(tmp_path: Path, idp: LoopbackProvider) -> Iterator[LomasHarness]:
    harness = _oidc_harness(tmp_path, idp)
    yield harness
    harness.close()


@pytest.fixture
def oidc_harness() -> Callable[..., LomasHarness]:
    """``oidc_harness(tmp_path, idp, **oidc_options)`` builds another harness trusting ``idp``."""
    return _oidc_harness
