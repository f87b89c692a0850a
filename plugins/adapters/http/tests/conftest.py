"""Fixtures for the http adapter tests: a real file server on loopback and adapters built by the core."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from lomas_adapter_http.testing import FileServer

from lomas_core.adapter import Adapter
from lomas_core.config import Config
from lomas_core.plugins import load_plugins

#: The value of the header secret in these tests; no error message may ever contain it.
HEADER_SECRET = "hdr-s3cret-Kx81-never-shown"

#: The loopback file server is a non-public address: tests allow it explicitly (and only it).
LOOPBACK = {"allowed_hosts": ["127.0.0.1"], "allowed_networks": ["127.0.0.1/32"]}
#: The test secret may be sent over http to the loopback file server only.
API_SECRET = {"env": "LOMAS_TEST_HTTP_API", "adapters": ["http"], "allowed_hosts": ["127.0.0.1"]}


@pytest.fixture
def server() -> Iterator[FileServer]:
    with FileServer() as srv:
        yield srv


@pytest.fixture
def make_adapter(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Adapter]]:
    """Build the http adapter through the plugin machinery; the secret ``api`` holds HEADER_SECRET.

    Loopback (127.0.0.1) is allowed unless the options say otherwise; ``secrets`` adds entries.
    """
    monkeypatch.setenv("LOMAS_TEST_HTTP_API", HEADER_SECRET)
    made: list[Adapter] = []

    def factory(secrets: dict[str, Any] | None = None, **options: Any) -> Adapter:
        config = Config.model_validate({
            "adapters": {"http": {**LOOPBACK, **options}}, "engines": {},
            "secrets": {"api": API_SECRET,
                        "unset": {"env": "LOMAS_TEST_HTTP_UNSET_VARIABLE", "adapters": ["http"],
                                  "allowed_hosts": ["127.0.0.1"]},
                        **(secrets or {})}})
        adapter = load_plugins(config, with_store=False).adapters["http"]
        made.append(adapter)
        return adapter

    yield factory
    for adapter in made:
        adapter.close()
