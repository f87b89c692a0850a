"""HTTP tests every push-down source shares: queries answered on the source, read into memory.

Subclass :class:`SourceHttpContract` (SmartNoise-SQL pushed down) or :class:`SourceLoadContract`
(engines that read the dataset into memory) and provide a ``harness`` fixture, a classmethod
decorated with ``@pytest.fixture(**WORKERS)`` (engines in threads, then in the worker pool),
whose server holds the datasets each class names, all with the metadata of
:func:`source_metadata`:

- :class:`SourceHttpContract`: engines ``smartnoise_sql`` and ``toy_count``; ``people``
  (``contract_frame(people=60)``, ``rows`` 200), ``over`` (the same rows, ``rows`` 50) and the
  dataset named by ``unreadable`` (a missing file, an unreachable database);
- :class:`SourceLoadContract`: engines ``opendp`` and ``toy_faulty``, ``limits.max_load_rows``
  500; ``people`` (``contract_frame(people=60)``, ``rows`` 300) and ``huge`` (``rows`` 1000).
"""

from __future__ import annotations

from typing import Any, ClassVar

from lomas_core.budget import Budget
from lomas_core.testing.harness import LomasHarness

__all__ = ["WORKERS", "SourceHttpContract", "SourceLoadContract", "grant_user", "source_metadata"]

#: The ``harness`` fixture's arguments: once with engines in threads, once in the worker pool.
WORKERS: dict[str, Any] = {"scope": "class", "params": [0, 1], "ids": ["threads", "pool"]}


def source_metadata(rows: int) -> dict[str, Any]:
    """The metadata of ``contract_frame`` datasets with public keys, declaring ``rows``."""
    return {
        "max_ids": 2, "rows": rows, "censor_dims": False, "row_privacy": False,
        "columns": {
            "pid": {"type": "int", "private_id": True, "nullable": True},
            "colour": {"type": "string", "categories": ["red", "blue"], "public_keys": True},
            "x": {"type": "float", "lower": 0, "upper": 10, "nullable": True},
        },
    }


def grant_user(h: LomasHarness, prefix: str, dataset: str) -> tuple[str, str]:
    """A new user (name unique to the harness) with a grant on ``dataset``; (name, token)."""
    user = f"{prefix}{id(h)}"
    return user, h.add_user(user, grant={dataset: (10.0, 1e-3)})


class SourceHttpContract:
    """SmartNoise-SQL answered where the data lies; see the module docstring for the harness."""

    #: The dataset that cannot be read (a missing file, an unreachable database).
    unreadable: ClassVar[str] = ""
    #: The pushed-down query: public keys ``colour`` first, then a noisy count.
    count: ClassVar[dict[str, Any]] = {
        "engine": "smartnoise_sql",
        "query": {"sql": "SELECT colour, COUNT(*) AS n FROM df GROUP BY colour",
                  "epsilon": 1.0, "delta": 1e-5}}

    def test_answered_on_the_source_and_charged(self, harness: LomasHarness) -> None:
        user, token = grant_user(harness, "r", "people")
        with harness.client(token) as c:
            r = c.post("/v1/datasets/people/query", json=self.count)
            assert r.status_code == 200, r.text
            rows = r.json()["result"]["rows"]
        assert [row[0] for row in rows] == ["red", "blue"]  # public keys, declared order
        for row in rows:  # 60 people with at most 2 rows each: 60 red and 60 blue rows
            assert abs(row[1] - 60) < 30
        assert harness.grant(user, "people").spent != Budget.of(0, 0)

    def test_engine_that_cannot_push_down_reads_into_memory(self, harness: LomasHarness) -> None:
        user, token = grant_user(harness, "t", "people")
        with harness.client(token) as c:
            r = c.post("/v1/datasets/people/query",
                       json={"engine": "toy_count", "query": {"epsilon": 1.0}})
        assert r.status_code == 200, r.text
        assert harness.grant(user, "people").spent == Budget.of(1.0, 0)

    def test_more_rows_than_declared_fails_and_keeps_the_charge(self,
                                                                harness: LomasHarness) -> None:
        user, token = grant_user(harness, "o", "over")
        with harness.client(token) as c:
            r = c.post("/v1/datasets/over/query", json=self.count)
        assert 400 <= r.status_code < 600 and r.status_code != 500, r.text
        message = r.json()["error"]["message"]
        assert "rows" not in message or "metadata" in message
        assert harness.grant(user, "over").spent != Budget.of(0, 0)

    def test_cost_and_dummy_never_touch_the_source(self, harness: LomasHarness) -> None:
        _, token = grant_user(harness, "d", self.unreadable)
        with harness.client(token) as c:
            url = f"/v1/datasets/{self.unreadable}"
            assert c.post(f"{url}/cost", json=self.count).status_code == 200
            r = c.post(f"{url}/query", json={**self.count, "dummy": {"rows": 50, "seed": 1}})
            assert r.status_code == 200, r.text

    def test_unreadable_dataset_is_refunded(self, harness: LomasHarness) -> None:
        user, token = grant_user(harness, "u", self.unreadable)
        with harness.client(token) as c:
            r = c.post(f"/v1/datasets/{self.unreadable}/query", json=self.count)
        assert r.status_code == 503 and r.json()["error"]["code"] == "dataset_unavailable", r.text
        assert "password" not in r.text and "port=" not in r.text
        assert harness.grant(user, self.unreadable).spent == Budget.of(0, 0)


class SourceLoadContract:
    """Engines that cannot push down read the dataset into memory through the source; see the
    module docstring for the harness."""

    def test_opendp_reads_the_source_and_is_charged(self, harness: LomasHarness) -> None:
        import opendp.prelude  # noqa: F401 - registers the .dp namespace (when run alone)
        import polars as pl
        from lomas_engine_opendp.wire import empty_lazyframe, make_payload

        user, token = grant_user(harness, "o", "people")
        plan = empty_lazyframe(source_metadata(300)).select(  # .dp: OpenDP's polars namespace
            pl.len().dp.noise(),  # type: ignore[attr-defined]
            pl.col("x").fill_null(0.0).dp.sum((0.0, 10.0)))  # type: ignore[attr-defined]
        with harness.client(token) as c:
            r = c.post("/v1/datasets/people/query",
                       json={"engine": "opendp", "query": make_payload(plan, epsilon=1.0)})
            assert r.status_code == 200, r.text
        (n, _), = r.json()["result"]["rows"]
        assert abs(n - 120) < 40  # 60 people, at most 2 rows each
        assert harness.grant(user, "people").spent != Budget.of(0, 0)

    def test_loaded_table_follows_the_metadata(self, harness: LomasHarness) -> None:
        user, token = grant_user(harness, "t", "people")
        with harness.client(token) as c:
            r = c.post("/v1/datasets/people/query",
                       json={"engine": "toy_faulty", "query": {"epsilon": 1.0}})
            assert r.status_code == 200, r.text
        # 60 people x 4 rows, one row without an id, one extra row of person 0: max_ids keeps 2.
        assert r.json()["result"]["value"] == 120
        assert harness.grant(user, "people").spent == Budget.of(1.0, 0)

    def test_over_the_load_limit_is_refused_free(self, harness: LomasHarness) -> None:
        user, token = grant_user(harness, "h", "huge")
        with harness.client(token) as c:
            r = c.post("/v1/datasets/huge/query",
                       json={"engine": "toy_faulty", "query": {"epsilon": 1.0}})
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "invalid_query" and "limits.max_load_rows" in error["message"]
        assert harness.grant(user, "huge").spent == Budget.of(0, 0)
