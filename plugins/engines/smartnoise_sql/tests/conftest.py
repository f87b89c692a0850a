"""Shared fixtures for the smartnoise_sql engine tests."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from snsql_testdata import METADATA, make_frame

from lomas_core.data import DataHandle
from lomas_core.engine import DatasetInfo
from lomas_core.metadata import Metadata
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
def dataset() -> DatasetInfo:
    return DatasetInfo(name="people", metadata=Metadata.model_validate(METADATA))


@pytest.fixture(scope="session")
def handle(frame: pd.DataFrame) -> DataHandle:
    import pyarrow as pa

    return DataHandle("people", "v1", pa.Table.from_pandas(frame, preserve_index=False))
