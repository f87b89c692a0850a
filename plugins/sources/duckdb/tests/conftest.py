"""Remote stores for the ``duckdb`` source's remote tests, one per test module: moto's S3 server
and a loopback HTTP file server (the ``s3`` and ``http`` adapters' test servers, imported only
when a test asks for them)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def moto() -> Iterator[Any]:
    from lomas_adapter_s3.testing import MotoS3

    with MotoS3() as server:
        yield server


@pytest.fixture(scope="module")
def files() -> Iterator[Any]:
    from lomas_adapter_http.testing import FileServer

    with FileServer() as server:
        yield server
