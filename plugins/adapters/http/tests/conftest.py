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


@pytest.fixture
def server() -> Iterator[FileServer]:
    with FileServer() as srv:
        yield srv


@pytest.fixture
def make_adapter(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Adapter]]:
    """Build the http adapter through the plugin machinery; the secret ``api`` holds HEADER_SECRET."""
    monkeypatch.setenv("LOMAS_TEST_HTTP_API", HEADER_SECRET)
    made: list[Adapter] = []

    def factory(**options: Any) -> Adapter:
        config = Config(adapters={"http": options}, engines={},
                        secrets={"api": {"env": "LOMAS_TEST_HTTP_API"},
                                 "unset": {"env": "LOMAS_TEST_HTTP_UNSET_VARIABLE"}})
        adapter = load_plugins(config, with_store=False).adapters["http"]
        made.append(adapter)
        return adapter

    yield factory
    for adapter in made:
        adapter.close()
