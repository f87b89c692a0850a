"""Shared fixtures for the opendp engine tests."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
from opendp_testdata import METADATA, make_table

from lomas_core.data import DataHandle
from lomas_core.engine import DatasetInfo
from lomas_core.metadata import Metadata
from lomas_core.testing.plugins import build


@pytest.fixture(autouse=True)
def _quiet_polars_json() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


@pytest.fixture(scope="session")
def engine() -> Any:
    from lomas_engine_opendp.engine import OpenDPEngine

    eng = build(OpenDPEngine, {})
    eng.warmup()
    return eng


@pytest.fixture(scope="session")
def table() -> pa.Table:
    return make_table()


@pytest.fixture
def dataset() -> DatasetInfo:
    return DatasetInfo(name="people", metadata=Metadata.model_validate(METADATA))


@pytest.fixture
def handle(table: pa.Table) -> DataHandle:
    return DataHandle("people", "v1", table)
