"""The ``duckdb`` source through the HTTP API: SmartNoise-SQL answered where the file lies, with
engines in threads and in the worker pool; engines that cannot push down read it into memory; a missing
file refunded; a table over its declared ``rows`` failed with the charge kept."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lomas_core.testing.harness import LomasHarness
from lomas_core.testing.source_contract import contract_frame
from lomas_core.testing.source_http import WORKERS, SourceHttpContract, source_metadata

pytest.importorskip("lomas_engine_smartnoise_sql")


class TestDuckDBHttp(SourceHttpContract):
    unreadable = "gone"

    @pytest.fixture(**WORKERS)
    @classmethod
    def harness(cls, request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[LomasHarness]:
        tmp = tmp_path_factory.mktemp("duckdb-http")
        h = LomasHarness(tmp, engines={"smartnoise_sql": {}, "toy_count": {}},
                         adapters={"duckdb": {"allowed_dirs": [str(tmp)]}},
                         execution={"workers": request.param})
        h.add_dataset("people", contract_frame(people=60), source_metadata(200), adapter="duckdb")
        h.add_dataset("over", contract_frame(people=60), source_metadata(50), adapter="duckdb")
        gone = h.add_dataset("gone", contract_frame(), source_metadata(200), adapter="duckdb")
        gone.unlink()
        yield h
        h.close()
