"""Real remote stores for the ``duckdb`` source's remote tests: moto's S3 server and a loopback
HTTP file server (the test servers of the ``s3`` and ``http`` adapters), with the server config
and the scoped credentials secret that point the source at them."""

from __future__ import annotations

import io
import itertools
import os
from pathlib import Path
from typing import Any

#: The buckets tests create, in order; the test credentials are scoped to them.
BUCKETS = [f"lomas-duck-{i}" for i in range(64)]
_next = itertools.count()
#: The stores listen on loopback, which the source refuses unless allowed: tests allow only it.
LOOPBACK = {"allowed_networks": ["127.0.0.1/32"], "connect_timeout": 2, "read_timeout": 10}
SECRET_ENV = "LOMAS_TEST_DUCKDB_S3"


def new_bucket(moto: Any) -> str:
    name = BUCKETS[next(_next)]
    moto.client.create_bucket(Bucket=name)
    return name


def parquet_bytes(table: Any) -> bytes:
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def csv_bytes(table: Any) -> bytes:
    import pyarrow.csv as pacsv

    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer)
    return buffer.getvalue()


def s3_options(moto: Any, buckets: list[str], **extra: Any) -> dict[str, Any]:
    """``adapters.duckdb.s3`` for ``moto``."""
    return {"endpoint_url": moto.endpoint_url, "region": moto.region, "allowed_buckets": buckets,
            "max_attempts": 1, **LOOPBACK, **extra}


def reader_secret(moto: Any, env: str = SECRET_ENV, value: str | None = None,
                  buckets: list[str] | None = None, file: Path | None = None) -> dict[str, Any]:
    """The ``secrets`` entry ``reader``: the test credentials, scoped to the duckdb source, the
    moto endpoint and the test buckets (the environment variable is set here). With ``file``
    the value is written there instead: execution workers fork from a forkserver that may have
    started before the variable was set."""
    from lomas_adapter_s3.testing import TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY

    text = value or f"{TEST_ACCESS_KEY_ID}:{TEST_SECRET_ACCESS_KEY}"
    where: dict[str, Any] = {"env": env}
    if file is None:
        os.environ[env] = text
    else:
        file.write_text(text)
        where = {"file": str(file)}
    return {**where, "adapters": ["duckdb"], "endpoints": [moto.endpoint_url],
            "buckets": BUCKETS if buckets is None else buckets}
