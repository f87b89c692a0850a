"""The shared store contract suite, on the mongodb store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lomas_core.testing.store_contract import StoreContract, StoreSpec
from lomas_testsupport.mongo import drop_database, fresh_database_name


class TestMongoStoreContract(StoreContract):
    @pytest.fixture
    def store_spec(self, mongodb_uri: str) -> Iterator[StoreSpec]:
        name = fresh_database_name()
        yield ("mongodb", {"uri": mongodb_uri, "database": name, "server_selection_timeout_ms": 5000})
        drop_database(mongodb_uri, name)
        drop_database(mongodb_uri, f"{name}_second")
