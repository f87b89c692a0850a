"""``float`` columns are ``double precision`` on PostgreSQL, whose arithmetic raises on overflow
and underflow: through the HTTP API, queries answer alike (same status, same columns, same number
of rows) on neighbouring tables, one with a row whose value would overflow or underflow."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lomas_core.models import DatasetDescription
from lomas_core.testing.harness import LomasHarness
from lomas_testsupport.postgres import load_table

pytest.importorskip("lomas_engine_smartnoise_sql")

METADATA: dict[str, Any] = {
    "max_ids": 1, "rows": 300, "censor_dims": False, "row_privacy": True,
    "columns": {"x": {"type": "float", "lower": 0.0, "upper": 10.0},
                "grp": {"type": "string", "categories": ["a", "b"], "public_keys": True}},
}
PROBES = [
    "SELECT SUM(x) AS s FROM df",
    "SELECT AVG(x) AS m FROM df",
    "SELECT grp, COUNT(*) AS n, AVG(x) AS m FROM df GROUP BY grp",
    "SELECT STDDEV(x) AS sd FROM df",
    "SELECT SUM(x * x * x) AS s FROM df",
    "SELECT COUNT(*) AS n FROM df WHERE x * x * x * x > 1",
    "SELECT COUNT(*) AS n FROM df WHERE x * x < 1",
    "SELECT COUNT(*) AS n FROM df WHERE x - 1e308 < 0",
    "SELECT COUNT(*) AS n FROM df WHERE ROUND(x, 2) > 1",
    "SELECT COUNT(*) AS n FROM df WHERE SQRT(x * x) > 1",
]
NEIGHBOURS = {"huge": 1e300, "tiny": 1e-300, "negative_huge": -1e300}


@pytest.fixture(scope="module")
def harness(lomas_postgres: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LomasHarness]:
    import pyarrow as pa

    tmp = tmp_path_factory.mktemp("pg-float")
    (tmp / "pg.dsn").write_text(lomas_postgres.reader_dsn)
    h = LomasHarness(tmp, engines={"smartnoise_sql": {}}, adapters={"postgresql": {}},
                     execution={"workers": 0},
                     secrets={"pg": {"file": str(tmp / "pg.dsn"), "adapters": ["postgresql"],
                                     "allowed_hosts": ["127.0.0.1"]}})
    n = 200
    base = {"x": [1.0 + i % 7 for i in range(n)], "grp": ["a" if i % 3 else "b" for i in range(n)]}
    tables = {"without": pa.table(base)}
    for name, value in NEIGHBOURS.items():
        tables[name] = pa.table({"x": [*base["x"], value], "grp": [*base["grp"], "a"]})
    for name, table in tables.items():
        load_table(lomas_postgres.dsn(), f"float_{name}", table, reader="lomas_reader")
        h.add_dataset_description(DatasetDescription(
            name=name, adapter="postgresql",
            options={"credentials": "pg", "table": f"float_{name}"}, metadata=METADATA))
    yield h
    h.close()


def _outcome(c: Any, dataset: str, sql: str) -> tuple[int, Any, int]:
    r = c.post(f"/v1/datasets/{dataset}/query", json={
        "engine": "smartnoise_sql", "query": {"sql": sql, "epsilon": 1.0, "delta": 1e-5}})
    body = r.json()
    if r.status_code != 200:
        return r.status_code, body["error"]["code"], 0
    return 200, body["result"]["columns"], len(body["result"]["rows"])


@pytest.mark.parametrize("neighbour", sorted(NEIGHBOURS))
def test_overflow_and_underflow_answer_alike(harness: LomasHarness, neighbour: str) -> None:
    datasets = ["without", neighbour]
    token = harness.add_user(f"p{neighbour}", grant={d: (1000.0, 0.1) for d in datasets})
    with harness.client(token) as c:
        for sql in PROBES:
            outcomes = [_outcome(c, d, sql) for d in datasets]
            assert outcomes[0] == outcomes[1], sql
            # 422: refused at cost time (SmartNoise has no bounds for it), free on both.
            assert outcomes[0][0] in (200, 422), (sql, outcomes[0])
            assert outcomes[0][0] == 200 or sql not in PROBES[:4], (sql, outcomes[0])
