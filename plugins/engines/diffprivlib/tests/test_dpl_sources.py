"""DiffPrivLib on a dataset that lives on a push-down source (``duckdb``): the server reads it
into memory through the source and the model is trained and charged, with engines in threads
and in the worker pool."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dpl_testdata import METADATA, make_table, payload

from lomas_core.budget import Budget
from lomas_core.testing.harness import LomasHarness

pytest.importorskip("lomas_source_duckdb")


@pytest.fixture(scope="module", params=[0, 1], ids=["threads", "pool"])
def harness(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[LomasHarness]:
    tmp = tmp_path_factory.mktemp("dpl-source")
    h = LomasHarness(tmp, engines={"diffprivlib": {}},
                     adapters={"duckdb": {"allowed_dirs": [str(tmp)]}},
                     execution={"workers": request.param})
    h.add_dataset("plane", make_table(), METADATA, adapter="duckdb")
    yield h
    h.close()


def test_trained_from_the_source_and_charged(harness: LomasHarness) -> None:
    user = f"r{id(harness)}"
    token = harness.add_user(user, grant={"plane": (20.0, 0.0)})
    body = {"engine": "diffprivlib", "query": payload(
        ("StandardScaler", {"epsilon": 2.0}), ("LogisticRegression", {"epsilon": 2.0}),
        target_columns=["label"])}
    with harness.client(token) as c:
        cost = c.post("/v1/datasets/plane/cost", json=body).json()
        r = c.post("/v1/datasets/plane/query", json=body)
        assert r.status_code == 200, r.text
    assert harness.grant(user, "plane").spent == Budget.of(cost["epsilon"], cost["delta"])
    assert cost["epsilon"] > 0
