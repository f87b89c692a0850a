"""The ``duckdb`` source over S3 (moto's server) and HTTP (a loopback file server) through the
lomas HTTP API, with engines in threads and in the worker pool (each worker builds its own fsspec
filesystem): SmartNoise-SQL answered on the source, a missing object refunded, a table over its
declared ``rows`` failed with the charge kept; engines that cannot push down read it into memory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("s3fs")
pytest.importorskip("lomas_engine_smartnoise_sql")
pytest.importorskip("lomas_adapter_s3.testing")
pytest.importorskip("lomas_adapter_http.testing")

from lomas_adapter_http.testing import FileServer  # noqa: E402
from lomas_adapter_s3.testing import MotoS3  # noqa: E402
from remote_fixtures import LOOPBACK, new_bucket, parquet_bytes, reader_secret, s3_options  # noqa: E402

from lomas_core.models import DatasetDescription  # noqa: E402
from lomas_core.testing.harness import LomasHarness  # noqa: E402
from lomas_core.testing.source_contract import contract_frame  # noqa: E402
from lomas_core.testing.source_http import (  # noqa: E402
    WORKERS,
    SourceHttpContract,
    SourceLoadContract,
    source_metadata,
)


def _register(h: LomasHarness, name: str, rows: int, options: dict[str, Any]) -> None:
    h.add_dataset_description(DatasetDescription.model_validate({
        "name": name, "adapter": "duckdb", "options": options, "metadata": source_metadata(rows)}))


def _s3_harness(tmp: Any, moto: MotoS3, workers: int, engines: dict[str, Any],
                **extra: Any) -> tuple[LomasHarness, str]:
    bucket = new_bucket(moto)
    h = LomasHarness(tmp, engines=engines,
                     adapters={"duckdb": {"threads": 1, "s3": s3_options(moto, [bucket])}},
                     secrets={"reader": reader_secret(moto, file=tmp / "reader.secret")},
                     execution={"workers": workers},
                     **extra)
    return h, bucket


class TestDuckDBS3Http(SourceHttpContract):
    unreadable = "gone"

    @pytest.fixture(**WORKERS)
    @classmethod
    def harness(cls, request: pytest.FixtureRequest, moto: MotoS3,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[LomasHarness]:
        h, bucket = _s3_harness(tmp_path_factory.mktemp("duckdb-s3-http"), moto, request.param,
                                {"smartnoise_sql": {}, "toy_count": {}})
        moto.client.put_object(Bucket=bucket, Key="people/part-0.parquet",
                               Body=parquet_bytes(contract_frame(people=60)))
        folder = {"path": f"s3://{bucket}/people/", "credentials": "reader"}
        _register(h, "people", 200, folder)
        _register(h, "over", 50, folder)
        _register(h, "gone", 200, {"path": f"s3://{bucket}/gone.parquet", "credentials": "reader"})
        yield h
        h.close()


class TestDuckDBS3Load(SourceLoadContract):
    @pytest.fixture(**WORKERS)
    @classmethod
    def harness(cls, request: pytest.FixtureRequest, moto: MotoS3,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[LomasHarness]:
        pytest.importorskip("lomas_engine_opendp")
        h, bucket = _s3_harness(tmp_path_factory.mktemp("duckdb-s3-load"), moto, request.param,
                                {"opendp": {}, "toy_faulty": {}}, limits={"max_load_rows": 500})
        moto.client.put_object(Bucket=bucket, Key="people.parquet",
                               Body=parquet_bytes(contract_frame(people=60)))
        options = {"path": f"s3://{bucket}/people.parquet", "credentials": "reader"}
        _register(h, "people", 300, options)
        _register(h, "huge", 1000, options)
        yield h
        h.close()


class TestDuckDBHttpHttp(SourceHttpContract):
    unreadable = "gone"

    @pytest.fixture(**WORKERS)
    @classmethod
    def harness(cls, request: pytest.FixtureRequest, files: FileServer,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[LomasHarness]:
        h = LomasHarness(tmp_path_factory.mktemp("duckdb-http-http"),
                         engines={"smartnoise_sql": {}, "toy_count": {}},
                         adapters={"duckdb": {"threads": 1, "http": {
                             "allowed_prefixes": [files.url("/api/")], **LOOPBACK}}},
                         execution={"workers": request.param})
        files.put("/api/people.parquet", parquet_bytes(contract_frame(people=60)))
        _register(h, "people", 200, {"path": files.url("/api/people.parquet")})
        _register(h, "over", 50, {"path": files.url("/api/people.parquet")})
        _register(h, "gone", 200, {"path": files.url("/api/gone.parquet")})
        yield h
        h.close()
