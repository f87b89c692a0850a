"""Shared fixtures for the diffprivlib engine tests."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from dpl_testdata import METADATA, make_table

from lomas_core.data import DataHandle
from lomas_core.engine import DatasetInfo
from lomas_core.metadata import Metadata
from lomas_core.testing.plugins import build


@pytest.fixture(scope="session")
def engine() -> Any:
    from lomas_engine_diffprivlib.engine import DiffPrivLibEngine

    return build(DiffPrivLibEngine, {})


@pytest.fixture(scope="session")
def table() -> pa.Table:
    return make_table()


@pytest.fixture
def dataset() -> DatasetInfo:
    return DatasetInfo(name="plane", metadata=Metadata.model_validate(METADATA))


@pytest.fixture
def handle(table: pa.Table) -> DataHandle:
    return DataHandle("plane", "v1", table)
