"""The http adapter against the shared adapter contract, on a real HTTP server on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lomas_adapter_http.testing import FileServer, table_bytes

from lomas_core.testing.adapter_contract import AdapterContract, Source
from lomas_core.testing.engine_contract import contract_table


class TestHttpAdapter(AdapterContract):
    adapter_name = "http"

    @pytest.fixture
    def adapter_options(self) -> dict[str, object]:
        return {"connect_timeout": 2, "read_timeout": 5, "allowed_hosts": ["127.0.0.1"],
                "allowed_networks": ["127.0.0.1/32"]}

    @pytest.fixture
    def source(self) -> Iterator[Source]:
        with FileServer() as server:
            server.put("/t.csv", table_bytes(contract_table(), "csv"))
            server.put("/t.parquet", table_bytes(contract_table(), "parquet"))

            def change() -> None:
                server.put("/t.csv", table_bytes(contract_table(100), "csv"))

            yield Source(csv={"url": server.url("/t.csv")},
                         parquet={"url": server.url("/t.parquet")},
                         missing={"url": server.url("/absent.csv")}, change=change)
