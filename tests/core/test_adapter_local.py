"""The local adapter against the shared adapter contract, plus its directory restriction."""

from __future__ import annotations

from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from lomas_core.errors import InvalidRequest
from lomas_core.testing.adapter_contract import AdapterContract, Source
from lomas_core.testing.engine_contract import contract_table


class TestLocalAdapter(AdapterContract):
    adapter_name = "local"

    @pytest.fixture
    def adapter_options(self, tmp_path: Path) -> dict[str, object]:
        return {"allowed_dirs": [str(tmp_path / "data")]}

    @pytest.fixture
    def source(self, tmp_path: Path) -> Source:
        data = tmp_path / "data"
        data.mkdir()
        table = contract_table()
        pacsv.write_csv(table, data / "t.csv")
        pq.write_table(table, data / "t.parquet")

        def change() -> None:
            pacsv.write_csv(contract_table(100), data / "t.csv")

        return Source(csv={"path": str(data / "t.csv")}, parquet={"path": str(data / "t.parquet")},
                      missing={"path": str(data / "absent.csv")}, change=change)

    def test_paths_outside_allowed_dirs_refused(self, adapter, tmp_path: Path) -> None:
        outside = tmp_path / "secret.csv"
        outside.write_text("a\n1\n")
        for path in (str(outside), str(tmp_path / "data" / ".." / "secret.csv"), "/etc/passwd"):
            with pytest.raises(InvalidRequest):
                adapter.check_options({"path": path, "format": "csv"})
            with pytest.raises(InvalidRequest):
                adapter.load("contract", {"path": path, "format": "csv"})

    def test_symlink_escape_refused(self, adapter, tmp_path: Path) -> None:
        outside = tmp_path / "secret.csv"
        outside.write_text("a\n1\n")
        link = tmp_path / "data" / "link.csv"
        link.parent.mkdir(exist_ok=True)
        link.symlink_to(outside)
        with pytest.raises(InvalidRequest):
            adapter.load("contract", {"path": str(link)})
