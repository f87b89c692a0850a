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
#: The buckets the ``bucket`` fixture creates, in order; the test credentials are scoped to them.
TEST_BUCKETS = [f"lomas-test-{i}" for i in range(256)]
#: moto listens on loopback, which the s3 adapter refuses unless allowed: tests allow only it.
LOOPBACK = {"allowed_networks": ["127.0.0.1/32"]}


def scoped(env: str, endpoints: list[str], buckets: list[str] | None = None) -> dict[str, Any]:
    """A secret entry from ``env`` that the s3 adapter may use with these endpoints and buckets."""
    return {"env": env, "adapters": ["s3"], "endpoints": endpoints,
            "buckets": [*TEST_BUCKETS, "strict", "private", "no-such-bucket"] if buckets is None else buckets}


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoS3]:
    with MotoS3() as server:
        yield server


@pytest.fixture
def bucket(moto: MotoS3) -> str:
    name = TEST_BUCKETS[next(_buckets)]
    moto.client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def make_adapter(moto: MotoS3, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Adapter]]:
    """Build the s3 adapter through the plugin machinery, pointed at ``moto`` by default.

    Secrets: ``s3`` holds the test credentials, ``other`` other credentials for ``extra_secrets``,
    ``garbled`` a value in no credentials format, ``unset`` names an unset variable. Each may be
    used with the adapter's endpoint and the test buckets; loopback is allowed.
    """
    monkeypatch.setenv("LOMAS_TEST_S3", f"{TEST_ACCESS_KEY_ID}:{TEST_SECRET_ACCESS_KEY}")
    monkeypatch.setenv("LOMAS_TEST_S3_GARBLED", "no-colon-here")
    made: list[Adapter] = []

    def factory(secrets: dict[str, str] | None = None, **options: Any) -> Adapter:
        options = {"endpoint_url": moto.endpoint_url, "region": moto.region, "max_attempts": 1,
                   "connect_timeout": 2, "read_timeout": 5, **LOOPBACK, **options}
        for name, value in (secrets or {}).items():
            monkeypatch.setenv(f"LOMAS_TEST_S3_{name.upper()}", value)
        where = [options["endpoint_url"]]
        config = Config.model_validate({"adapters": {"s3": options}, "engines": {}, "secrets": {
            "s3": scoped("LOMAS_TEST_S3", where), "garbled": scoped("LOMAS_TEST_S3_GARBLED", where),
            "unset": scoped("LOMAS_TEST_S3_UNSET_VARIABLE", where),
            **{name: scoped(f"LOMAS_TEST_S3_{name.upper()}", where) for name in secrets or {}}}})
        adapter = load_plugins(config, with_store=False).adapters["s3"]
        made.append(adapter)
        return adapter

    yield factory
    for adapter in made:
        adapter.close()
