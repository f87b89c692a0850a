"""The s3 adapter against the shared adapter contract, on moto's S3 server over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from lomas_adapter_s3.testing import MotoS3, table_bytes

from conftest import LOOPBACK, scoped
from lomas_core.testing.adapter_contract import AdapterContract, Source
from lomas_core.testing.engine_contract import contract_table


class TestS3Adapter(AdapterContract):
    adapter_name = "s3"

    @pytest.fixture
    def adapter_options(self, moto: MotoS3) -> dict[str, Any]:
        return {"endpoint_url": moto.endpoint_url, "region": moto.region, "max_attempts": 1,
                **LOOPBACK}

    @pytest.fixture
    def source(self, moto: MotoS3, bucket: str, monkeypatch: pytest.MonkeyPatch) -> Source:
        from lomas_adapter_s3.testing import TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY

        monkeypatch.setenv("LOMAS_TEST_S3_CONTRACT", f"{TEST_ACCESS_KEY_ID}:{TEST_SECRET_ACCESS_KEY}")
        moto.client.put_object(Bucket=bucket, Key="t.csv", Body=table_bytes(contract_table(), "csv"))
        moto.client.put_object(Bucket=bucket, Key="t.parquet",
                               Body=table_bytes(contract_table(), "parquet"))

        def change() -> None:
            moto.client.put_object(Bucket=bucket, Key="t.csv",
                                   Body=table_bytes(contract_table(100), "csv"))

        base = {"bucket": bucket, "credentials": "s3"}
        return Source(csv={**base, "key": "t.csv"}, parquet={**base, "key": "t.parquet"},
                      missing={**base, "key": "absent.csv"}, change=change,
                      config_overrides={"secrets": {"s3": scoped("LOMAS_TEST_S3_CONTRACT",
                                                                   [moto.endpoint_url])}})
