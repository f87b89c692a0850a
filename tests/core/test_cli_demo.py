"""The shipped demo table and metadata agree, and ``lomas demo`` builds a consistent deployment."""

from __future__ import annotations

from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import yaml

from lomas_core.cli import main
from lomas_core.config import load_config
from lomas_core.demo import demo_file
from lomas_core.demo.generate import COLUMNS, SEED, generate_rows
from lomas_core.io import check_schema
from lomas_core.metadata import Metadata
from lomas_core.plugins import make_store


def _metadata() -> Metadata:
    return Metadata.model_validate(yaml.safe_load(demo_file("penguins_metadata.yaml").read_text()))


def test_shipped_csv_matches_its_metadata() -> None:
    meta = _metadata()
    assert (meta.max_ids, meta.rows, meta.row_privacy, meta.censor_dims) == (1, 344, True, True)
    public = [n for n, c in meta.columns.items() if c.public_keys]
    assert public == ["species", "island", "sex"]
    table = pacsv.read_csv(demo_file("penguins.csv"),
                           convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    assert tuple(table.column_names) == COLUMNS == tuple(meta.columns)
    assert table.num_rows == 344
    for name, column in meta.columns.items():
        values = table.column(name).to_pylist()
        if not column.nullable:
            assert None not in values, name
        present = [v for v in values if v is not None]
        if column.categories is not None:
            assert set(present) == set(column.categories), name
        else:
            assert column.lower is not None and column.upper is not None
            assert float(column.lower) <= min(present) and max(present) <= float(column.upper), name
    assert table.column("sex").null_count > 0 and table.column("bill_length_mm").null_count > 0


def test_generator_is_deterministic() -> None:
    assert generate_rows(SEED) == generate_rows(SEED)
    assert generate_rows(SEED) != generate_rows(SEED + 1)


def test_demo_command_writes_a_valid_deployment(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOMAS_CONFIG", raising=False)
    assert main(["demo", "--dir", str(tmp_path / "d"), "--port", "8123"]) == 0
    out = capsys.readouterr().out
    config = load_config(tmp_path / "d" / "lomas.yaml")
    assert config.server.port == 8123 and config.store.name == "sqlite"
    assert set(config.engines) <= {"smartnoise_sql", "opendp", "diffprivlib"}
    table = pq.read_table(tmp_path / "d" / "data" / "penguins.parquet")
    checked = check_schema("penguins", table, _metadata())
    assert checked.num_rows == 344 and checked.column("sex").null_count > 0
    store = make_store(config)
    try:
        token = (tmp_path / "d" / "token").read_text().strip()
        assert token in out
        grant = store.get_grant("alice", "penguins")
        assert grant is not None and grant.initial.epsilon == 10
        assert store.get_dataset("penguins").metadata == _metadata()
    finally:
        store.close()
