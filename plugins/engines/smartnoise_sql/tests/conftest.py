"""Shared fixtures for the smartnoise_sql engine tests.

``handle`` is parametrized over the targets a query can run on: ``memory`` (the dataset loaded
into the engine's in-memory DuckDB) and every installed push-down source (``duckdb``: Parquet
read in place), so the accuracy and privacy tests run on each.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from snsql_targets import TARGETS, info_for, source_handle
from snsql_testdata import METADATA, make_frame

from lomas_core.data import DataHandle
from lomas_core.engine import DatasetInfo
from lomas_core.metadata import Metadata
from lomas_core.source import SourceHandle
from lomas_core.testing.plugins import build


@pytest.fixture(scope="session")
def engine() -> Any:
    from lomas_engine_smartnoise_sql.engine import SmartnoiseSQLEngine

    eng = build(SmartnoiseSQLEngine, {})
    eng.warmup()
    return eng


@pytest.fixture(scope="session")
def frame() -> pd.DataFrame:
    return make_frame()


@pytest.fixture
def dataset(request: pytest.FixtureRequest) -> DatasetInfo:
    """The dataset as the engine sees it: with the dialect of the ``handle``'s target, if any."""
    handle = request.getfixturevalue("handle") if "handle" in request.fixturenames else None
    target = handle.target.dialect if isinstance(handle, SourceHandle) else "memory"
    return info_for(target, "people", Metadata.model_validate(METADATA))


@pytest.fixture(scope="session", params=TARGETS)
def handle(request: pytest.FixtureRequest, frame: pd.DataFrame,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataHandle]:
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)
    if request.param == "memory":
        yield DataHandle("people", "v1", table)
        return
    handle = source_handle(request, request.param, "people", table,
                           Metadata.model_validate(METADATA),
                           tmp_path_factory.mktemp(f"target-{request.param}"))
    yield handle
    handle.target.close()  # type: ignore[attr-defined]
