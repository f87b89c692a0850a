"""Engines that cannot push down read a ``duckdb`` dataset into memory through the source, via the
HTTP API, with engines in threads and in the worker pool: OpenDP answered and charged; the
metadata's rules hold on the loaded table; a table over ``limits.max_load_rows`` refused free."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lomas_core.testing.harness import LomasHarness
from lomas_core.testing.source_contract import contract_frame
from lomas_core.testing.source_http import WORKERS, SourceLoadContract, source_metadata

pytest.importorskip("lomas_engine_opendp")


class TestDuckDBLoad(SourceLoadContract):
    @pytest.fixture(**WORKERS)
    @classmethod
    def harness(cls, request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[LomasHarness]:
        tmp = tmp_path_factory.mktemp("duckdb-load")
        h = LomasHarness(tmp, engines={"opendp": {}, "toy_faulty": {}},
                         adapters={"duckdb": {"allowed_dirs": [str(tmp)]}},
                         execution={"workers": request.param}, limits={"max_load_rows": 500})
        for name, rows in (("people", 300), ("huge", 1000)):
            h.add_dataset(name, contract_frame(people=60), source_metadata(rows), adapter="duckdb")
        yield h
        h.close()
