"""The source contract for the ``duckdb`` source over remote files read through fsspec: S3 (moto's
server: a Parquet file, a folder of Parquet files, a CSV file) and HTTP (a loopback file server:
a Parquet file, a CSV file)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

pytest.importorskip("s3fs")
pytest.importorskip("lomas_adapter_s3.testing")
pytest.importorskip("lomas_adapter_http.testing")

from lomas_adapter_http.testing import FileServer  # noqa: E402
from lomas_adapter_s3.testing import MotoS3  # noqa: E402
from remote_fixtures import (  # noqa: E402
    LOOPBACK,
    csv_bytes,
    new_bucket,
    parquet_bytes,
    reader_secret,
    s3_options,
)

from lomas_core.testing.source_contract import SourceContract  # noqa: E402


class TestDuckDBS3Contract(SourceContract):
    source_name = "duckdb"
    forbidden: ClassVar[tuple[str, ...]] = (
        "SELECT * FROM read_parquet('s3://lomas-duck-63/x.parquet')",  # another bucket
        "SELECT * FROM read_csv('/etc/passwd')",
        "SET enable_external_access = true",
        "SET allowed_directories = ['s3://']",
        "INSTALL httpfs",
        "COPY (SELECT 1) TO 's3://lomas-duck-63/out.csv'",
    )

    @pytest.fixture
    def bucket(self, moto: MotoS3) -> str:
        return new_bucket(moto)

    @pytest.fixture
    def config_overrides(self, moto: MotoS3) -> dict[str, Any]:
        return {"secrets": {"reader": reader_secret(moto)}}

    @pytest.fixture
    def adapter_options(self, moto: MotoS3, bucket: str) -> dict[str, Any]:
        return {"memory_limit": "256MB", "threads": 1, "s3": s3_options(moto, [bucket])}

    @pytest.fixture
    def place(self, moto: MotoS3, bucket: str) -> Any:
        def place(table: Any, name: str) -> dict[str, Any]:
            moto.client.put_object(Bucket=bucket, Key=f"data/{name}.parquet",
                                   Body=parquet_bytes(table))
            return {"path": f"s3://{bucket}/data/{name}.parquet", "credentials": "reader"}

        return place

    @pytest.fixture
    def outside(self, bucket: str) -> dict[str, Any]:
        return {"path": "s3://lomas-elsewhere/data/x.parquet", "credentials": "reader"}


class TestDuckDBS3FolderContract(TestDuckDBS3Contract):
    """A folder of Parquet files (two parts per dataset, one of them in a sub-folder)."""

    @pytest.fixture
    def place(self, moto: MotoS3, bucket: str) -> Any:
        def place(table: Any, name: str) -> dict[str, Any]:
            half = table.num_rows // 2
            put = moto.client.put_object
            put(Bucket=bucket, Key=f"{name}/part-0.parquet", Body=parquet_bytes(table.slice(0, half)))
            put(Bucket=bucket, Key=f"{name}/more/part-1.parquet", Body=parquet_bytes(table.slice(half)))
            put(Bucket=bucket, Key=f"{name}/_SUCCESS", Body=b"")  # not a Parquet file: skipped
            return {"path": f"s3://{bucket}/{name}/", "credentials": "reader"}

        return place


class TestDuckDBS3CsvContract(TestDuckDBS3Contract):
    """One CSV object per dataset."""

    @pytest.fixture
    def place(self, moto: MotoS3, bucket: str) -> Any:
        def place(table: Any, name: str) -> dict[str, Any]:
            moto.client.put_object(Bucket=bucket, Key=f"csv/{name}.csv", Body=csv_bytes(table))
            return {"path": f"s3://{bucket}/csv/{name}.csv", "credentials": "reader"}

        return place


class TestDuckDBHttpContract(SourceContract):
    source_name = "duckdb"
    forbidden: ClassVar[tuple[str, ...]] = (
        "SELECT * FROM read_parquet('http://127.0.0.1:1/private/x.parquet')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SET enable_external_access = true",
        "SET allowed_paths = ['http://']",
        "INSTALL httpfs",
    )

    @pytest.fixture
    def adapter_options(self, files: FileServer) -> dict[str, Any]:
        return {"memory_limit": "256MB", "threads": 1,
                "http": {"allowed_prefixes": [files.url("/data/")], **LOOPBACK}}

    @pytest.fixture
    def place(self, files: FileServer) -> Any:
        def place(table: Any, name: str) -> dict[str, Any]:
            files.put(f"/data/{name}.parquet", parquet_bytes(table))
            return {"path": files.url(f"/data/{name}.parquet")}

        return place

    @pytest.fixture
    def outside(self, files: FileServer) -> dict[str, Any]:
        return {"path": files.url("/private/x.parquet")}

    def test_off_prefix_file_is_refused_by_the_connection(self, files: FileServer,
                                                          opened: Any) -> None:
        from lomas_core.testing.source_contract import contract_frame, contract_metadata

        files.put("/private/x.parquet", parquet_bytes(contract_frame()))
        target = opened(contract_frame(), contract_metadata())
        before = files.count("GET", "/private/x.parquet")
        with pytest.raises(Exception):  # noqa: B017 - DuckDB's permission error
            target.fetch(f"SELECT * FROM read_parquet('{files.url('/private/x.parquet')}')")
        assert files.count("GET", "/private/x.parquet") == before


class TestDuckDBHttpCsvContract(TestDuckDBHttpContract):
    """One CSV file per dataset."""

    @pytest.fixture
    def place(self, files: FileServer) -> Any:
        def place(table: Any, name: str) -> dict[str, Any]:
            files.put(f"/data/{name}.csv", csv_bytes(table))
            return {"path": files.url(f"/data/{name}.csv")}

        return place
