"""Shared by the admin-state tests (identities, suspension and tokens, the admin log).

Each runs on both stores: a harness with the toy count engine and one small dataset, and the
``lomas`` command run against the harness's own config.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest

from lomas_core.cli import main
from lomas_core.testing.harness import LomasHarness

META = {"max_ids": 1, "rows": 20, "columns": {"x": {"type": "int", "lower": 0, "upper": 9}}}
FRAME = pd.DataFrame({"x": [i % 10 for i in range(20)]})
QUERY = {"engine": "toy_count", "query": {"epsilon": 0.25}}
STORES = ["sqlite", "mongodb"]


def harness_on(request: pytest.FixtureRequest) -> Iterator[LomasHarness]:
    """A harness on the store named by ``request.param`` (a fixture body: yields, then closes)."""
    store = None
    if request.param == "mongodb":
        pytest.importorskip("lomas_store_mongodb")
        from lomas_testsupport.mongo import drop_database, fresh_database_name

        uri = request.getfixturevalue("mongodb_uri")
        name = fresh_database_name()
        store = {"name": "mongodb", "options": {"uri": uri, "database": name}}
        request.addfinalizer(lambda: drop_database(uri, name))
    harness = LomasHarness(request.getfixturevalue("tmp_path"), engines={"toy_count": {}},
                           store=store)
    harness.add_dataset("ds", FRAME, META)
    yield harness
    harness.close()


def run_cli(h: LomasHarness, capsys: pytest.CaptureFixture[str], *args: str,
            expect: int = 0) -> tuple[str, str]:
    """``lomas ARGS --config <the harness's config>``: (stdout, stderr); asserts the exit code."""
    config = h.tmp_path / "lomas.yaml"
    if not config.exists():
        config = h.write_config()
    capsys.readouterr()
    rc = main([*args, "--config", str(config)])
    out, err = capsys.readouterr()
    assert rc == expect, (out, err)
    return out, err
