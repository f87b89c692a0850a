"""Fixtures: a MongoDB (``$MONGODB_URI`` or a temporary nx-27017) and fresh stores on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from lomas_store_mongodb.store import MongoStore

from lomas_testsupport.mongo import mongodb_database, mongodb_uri  # noqa: F401 - fixtures

MakeStore = Callable[..., MongoStore]


@pytest.fixture
def make_store(mongodb_uri: str, mongodb_database: str) -> Iterator[MakeStore]:  # noqa: F811
    """Build stores on the test's database (several calls share it, like several servers)."""
    made: list[MongoStore] = []

    def make(*, create: bool = True, **options: Any) -> MongoStore:
        opts = {"uri": mongodb_uri, "database": mongodb_database,
                "server_selection_timeout_ms": 3000, **options}
        store = MongoStore.from_options(opts, create=create)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(make_store: MakeStore) -> MongoStore:
    return make_store()
