"""The shared reader's CSV nulls: empty and NA-like unquoted fields are null in every column, quoted
text stays text, and pyarrow's own CSV round-trips exactly."""

from __future__ import annotations

import gzip

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from lomas_core.errors import DatasetUnavailable
from lomas_core.io import CSV_NULL_VALUES, check_schema, read_table_bytes
from lomas_core.metadata import Metadata


def test_empty_fields_are_null_in_string_columns_too() -> None:
    data = b"s,i,f,b\nx,1,1.5,true\n,,,\nNA,2,NA,false\nnull,3,2.0,\n"
    table = read_table_bytes("ds", data, "csv")
    assert table.column("s").to_pylist() == ["x", None, None, None]
    assert table.column("i").to_pylist() == [1, None, 2, 3]
    assert table.column("f").to_pylist() == [1.5, None, None, 2.0]
    assert table.column("b").to_pylist() == [True, None, False, None]


def test_quoted_fields_are_always_values() -> None:
    data = b's,n\n"NA",1\n"",2\n"null",3\n,4\n'
    table = read_table_bytes("ds", data, "csv")
    assert table.column("s").to_pylist() == ["NA", "", "null", None]


@pytest.mark.parametrize("compress", [False, True])
def test_pyarrow_csv_round_trips_nulls_and_empty_strings(compress: bool) -> None:
    original = pa.table({"s": ["x", None, "", "NA", "n/a"], "i": [1, None, 3, 4, 5]})
    buffer = pa.BufferOutputStream()
    pacsv.write_csv(original, buffer)
    data = buffer.getvalue().to_pybytes()
    table = read_table_bytes("ds", gzip.compress(data) if compress else data, "csv")
    assert table.equals(original)


def test_null_values_are_the_documented_ones() -> None:
    assert "" in CSV_NULL_VALUES and "NA" in CSV_NULL_VALUES


def test_all_empty_column_reads_as_its_metadata_type() -> None:
    table = read_table_bytes("ds", b"s,n\n,1\n,2\n", "csv")
    meta = Metadata.model_validate({"columns": {"s": {"type": "string", "nullable": True},
                                                "n": {"type": "int"}}})
    checked = check_schema("ds", table, meta)
    assert checked.column("s").type == pa.string()
    assert checked.column("s").to_pylist() == [None, None]


def test_unparsable_csv_names_the_dataset_only() -> None:
    with pytest.raises(DatasetUnavailable) as info:
        read_table_bytes("ds", b"a,b\n1,2\n3,4,5,secret-cell\n", "csv")
    assert "'ds'" in info.value.message and "secret-cell" not in str(info.value.to_dict())
    assert info.value.touched is True
