"""Fixtures for the s3 adapter tests: moto's S3 server on loopback and adapters built by the core."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from lomas_adapter_s3.testing import TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, MotoS3

from lomas_core.adapter import Adapter
from lomas_core.config import Config
from lomas_core.plugins import load_plugins

_buckets = itertools.count()


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoS3]:
    with MotoS3() as server:
        yield server


@pytest.fixture
def bucket(moto: MotoS3) -> str:
    name = f"lomas-test-{next(_buckets)}"
    moto.client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def make_adapter(moto: MotoS3, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Adapter]]:
    """Build the s3 adapter through the plugin machinery, pointed at ``moto`` by default.

    Secrets: ``s3`` holds the test credentials, ``other`` other credentials for ``extra_secrets``,
    ``garbled`` a value in no credentials format, ``unset`` names an unset variable.
    """
    monkeypatch.setenv("LOMAS_TEST_S3", f"{TEST_ACCESS_KEY_ID}:{TEST_SECRET_ACCESS_KEY}")
    monkeypatch.setenv("LOMAS_TEST_S3_GARBLED", "no-colon-here")
    made: list[Adapter] = []

    def factory(secrets: dict[str, str] | None = None, **options: Any) -> Adapter:
        options = {"endpoint_url": moto.endpoint_url, "region": moto.region, "max_attempts": 1,
                   "connect_timeout": 2, "read_timeout": 5, **options}
        for name, value in (secrets or {}).items():
            monkeypatch.setenv(f"LOMAS_TEST_S3_{name.upper()}", value)
        config = Config(adapters={"s3": options}, engines={}, secrets={
            "s3": {"env": "LOMAS_TEST_S3"}, "garbled": {"env": "LOMAS_TEST_S3_GARBLED"},
            "unset": {"env": "LOMAS_TEST_S3_UNSET_VARIABLE"},
            **{name: {"env": f"LOMAS_TEST_S3_{name.upper()}"} for name in secrets or {}}})
        adapter = load_plugins(config, with_store=False).adapters["s3"]
        made.append(adapter)
        return adapter

    yield factory
    for adapter in made:
        adapter.close()
