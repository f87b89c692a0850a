"""The source contract for the ``postgresql`` source, on a real PostgreSQL started by the test
session (``lomas_postgres``), read through a role that may only SELECT the tables it is granted."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from lomas_core.errors import InvalidRequest
from lomas_core.source import SqlSource
from lomas_core.testing.source_contract import SourceContract
from lomas_testsupport.postgres import load_table

SECRET_ENV = "LOMAS_TEST_PG_READER"


class TestPostgresContract(SourceContract):
    source_name = "postgresql"
    forbidden: ClassVar[tuple[str, ...]] = (
        "SELECT pg_read_file('/etc/hostname')",
        "SELECT * FROM pg_catalog.pg_authid",
        "CREATE TABLE lomas_contract_x (a int)",
        "COPY (SELECT 1) TO '/tmp/lomas-contract-copy.csv'",
    )

    @pytest.fixture
    def adapter_options(self) -> dict[str, Any]:
        return {"statement_timeout_seconds": 5, "pool_size": 2}

    @pytest.fixture
    def config_overrides(self, lomas_postgres: Any,
                         monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
        monkeypatch.setenv(SECRET_ENV, lomas_postgres.reader_dsn)
        monkeypatch.setenv(SECRET_ENV + "_ELSEWHERE",
                           lomas_postgres.reader_dsn.replace("127.0.0.1", "127.0.0.2"))
        return {"secrets": {
            "pg": {"env": SECRET_ENV, "adapters": ["postgresql"], "allowed_hosts": ["127.0.0.1"]},
            "elsewhere": {"env": SECRET_ENV + "_ELSEWHERE", "adapters": ["postgresql"],
                          "allowed_hosts": ["127.0.0.1"]},
            "unscoped": {"env": SECRET_ENV}}}

    @pytest.fixture
    def place(self, lomas_postgres: Any) -> Any:
        def place(table: Any, name: str) -> dict[str, Any]:
            load_table(lomas_postgres.dsn(), name, table, reader="lomas_reader")
            return {"credentials": "pg", "table": name}

        return place

    @pytest.fixture
    def outside(self) -> dict[str, Any]:
        return {"credentials": "elsewhere", "table": "people"}

    def test_secret_not_scoped_to_the_source_is_refused(self, source: SqlSource) -> None:
        with pytest.raises(InvalidRequest):
            source.check_options({"credentials": "unscoped", "table": "people"})
        with pytest.raises(InvalidRequest):
            source.check_options({"credentials": "pg", "table": "people; DROP TABLE x"})

    def test_sessions_are_read_only_with_a_timeout(self, opened: Any) -> None:
        from lomas_core.testing.source_contract import contract_frame, contract_metadata

        target = opened(contract_frame(), contract_metadata())
        _, (read_only, timeout) = target.fetch(
            "SELECT current_setting('default_transaction_read_only'), "
            "current_setting('statement_timeout')")
        assert read_only == "on" and timeout == "5s"
