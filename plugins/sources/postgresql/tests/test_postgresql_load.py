"""Engines that cannot push down read a ``postgresql`` dataset into memory through the source (a
server-side cursor), via the HTTP API on a real PostgreSQL, with engines in threads and in the
worker pool: OpenDP answered and charged; the metadata's rules hold on the loaded table; a table
over ``limits.max_load_rows`` refused free."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lomas_core.models import DatasetDescription
from lomas_core.testing.harness import LomasHarness
from lomas_core.testing.source_contract import contract_frame
from lomas_core.testing.source_http import WORKERS, SourceLoadContract, source_metadata
from lomas_testsupport.postgres import load_table

pytest.importorskip("lomas_engine_opendp")


class TestPostgresLoad(SourceLoadContract):
    @pytest.fixture(**WORKERS)
    @classmethod
    def harness(cls, request: pytest.FixtureRequest, lomas_postgres: Any,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[LomasHarness]:
        tmp = tmp_path_factory.mktemp("pg-load")
        (tmp / "pg.dsn").write_text(lomas_postgres.reader_dsn)
        h = LomasHarness(tmp, engines={"opendp": {}, "toy_faulty": {}},
                         adapters={"postgresql": {"statement_timeout_seconds": 30,
                                                  "connect_timeout_seconds": 2}},
                         execution={"workers": request.param}, limits={"max_load_rows": 500},
                         secrets={"pg": {"file": str(tmp / "pg.dsn"), "adapters": ["postgresql"],
                                         "allowed_hosts": ["127.0.0.1"]}})
        load_table(lomas_postgres.dsn(), "load_people", contract_frame(people=60),
                   reader="lomas_reader")
        for name, rows in (("people", 300), ("huge", 1000)):
            h.add_dataset_description(DatasetDescription(
                name=name, adapter="postgresql",
                options={"credentials": "pg", "table": "load_people"},
                metadata=source_metadata(rows)))
        yield h
        h.close()
