"""The ``postgresql`` source through the HTTP API, on a real PostgreSQL, with engines in threads
and in the worker pool: answered where the table lives and charged; engines that cannot push down
read it into memory; an unreachable database refunded; a table over its declared ``rows`` failed with the
charge kept; cost and dummy runs never touch the database."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from lomas_core.budget import Budget
from lomas_core.models import DatasetDescription
from lomas_core.testing.harness import LomasHarness
from lomas_core.testing.source_contract import contract_frame
from lomas_core.testing.source_http import (
    WORKERS,
    SourceHttpContract,
    grant_user,
    source_metadata,
)
from lomas_testsupport.postgres import load_table

pytest.importorskip("lomas_engine_smartnoise_sql")


class TestPostgresHttp(SourceHttpContract):
    unreadable = "down"
    count: ClassVar[dict[str, Any]] = {"engine": "smartnoise_sql",
        "query": {"sql": "SELECT colour, COUNT(*) AS n, SUM(x) AS s FROM df GROUP BY colour",
                  "epsilon": 1.0, "delta": 1e-5}}

    @pytest.fixture(**WORKERS)
    @classmethod
    def harness(cls, request: pytest.FixtureRequest, lomas_postgres: Any,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[LomasHarness]:
        # Secrets as files: worker processes fork from a server that may have started before this
        # module set any environment variable.
        tmp = tmp_path_factory.mktemp("pg-http")
        (tmp / "pg.dsn").write_text(lomas_postgres.reader_dsn)
        (tmp / "down.dsn").write_text(lomas_postgres.reader_dsn.replace(
            f"port={lomas_postgres.port}", "port=1"))
        h = LomasHarness(tmp, engines={"smartnoise_sql": {}, "toy_count": {}},
                         adapters={"postgresql": {"statement_timeout_seconds": 30,
                                                  "connect_timeout_seconds": 2}},
                         execution={"workers": request.param},
                         secrets={name: {"file": str(tmp / f"{name}.dsn"),
                                         "adapters": ["postgresql"],
                                         "allowed_hosts": ["127.0.0.1"]}
                                  for name in ("pg", "down")})
        load_table(lomas_postgres.dsn(), "http_people", contract_frame(people=60),
                   reader="lomas_reader")
        for name, credentials, rows in (("people", "pg", 200), ("over", "pg", 50),
                                        ("down", "down", 200)):
            h.add_dataset_description(DatasetDescription(
                name=name, adapter="postgresql",
                options={"credentials": credentials, "table": "http_people"},
                metadata=source_metadata(rows)))
        yield h
        h.close()

    def test_construct_with_no_safe_form_is_refused_free(self, harness: LomasHarness) -> None:
        user, token = grant_user(harness, "c", "people")
        body = {"engine": "smartnoise_sql", "query": {
            "sql": "SELECT COUNT(*) AS n FROM df WHERE CAST(colour AS INTEGER) > 0",
            "epsilon": 1.0, "delta": 1e-5}}
        with harness.client(token) as c:
            r = c.post("/v1/datasets/people/query", json=body)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_query", r.text
        assert harness.grant(user, "people").spent == Budget.of(0, 0)
