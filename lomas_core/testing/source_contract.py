"""Contract tests every push-down source (:class:`lomas_core.source.SqlSource`) must pass.

Subclass :class:`SourceContract` and provide:

- ``source_name`` (the adapter's short name) and ``forbidden`` (statements in the target's
  dialect that its lock-down must refuse: reading another file, changing a setting, writing);
- an ``adapter_options`` fixture (the config options);
- a ``place`` fixture returning a callable ``place(table, name) -> options``: it puts a
  ``pyarrow.Table`` where the source reads it and returns the dataset options;
- an ``outside`` fixture: dataset options the source must refuse at ``check_options``;
- optionally ``config_overrides`` (other config sections, e.g. the scoped ``secrets``).

Sources reading files under ``allowed_dirs`` subclass :class:`FileSourceContract` instead (it
provides ``data_dir``, ``place`` as one Parquet file per dataset, and ``outside``); mix in
:class:`ParquetFolderPlacement` or :class:`CsvPlacement` (first) for the other layouts.

The tests check the rules of :mod:`lomas_core.source` on the target: declared columns only,
categories clamped, contributions bounded per ``private_id`` with a selection that depends on a
person's own rows only, the ``rows`` refusal, and the lock-down.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from lomas_core.config import Config
from lomas_core.errors import DatasetUnavailable, InvalidRequest
from lomas_core.metadata import Metadata
from lomas_core.plugins import load_plugins
from lomas_core.source import SqlSource, SqlTarget, TargetCache

__all__ = ["CsvPlacement", "FileSourceContract", "ParquetFolderPlacement", "SourceContract",
           "contract_frame", "contract_metadata"]

Place = Callable[[Any, str], dict[str, Any]]


def contract_metadata(**overrides: Any) -> Metadata:
    """Metadata of :func:`contract_frame` (person ids, a category, a number)."""
    doc: dict[str, Any] = {
        "max_ids": 2,
        "columns": {
            "pid": {"type": "int", "private_id": True, "nullable": True},
            "colour": {"type": "string", "categories": ["red", "blue"], "public_keys": False},
            "x": {"type": "float", "lower": 0, "upper": 10, "nullable": True},
        },
    }
    doc.update(overrides)
    return Metadata.model_validate(doc)


def contract_frame(people: int = 5, rows_each: int = 4, extra: bool = True) -> Any:
    """``people`` persons with ``rows_each`` rows each; with ``extra`` also a row without id and
    a row whose colour is not a declared category."""
    import pyarrow as pa

    pid: list[int | None] = []
    colour: list[str] = []
    x: list[float] = []
    for p in range(people):
        for r in range(rows_each):
            pid.append(p)
            colour.append("red" if r % 2 else "blue")
            x.append(float(p + r))
    if extra:
        pid += [None, 0]
        colour += ["red", "green"]
        x += [1.0, 9.5]
    return pa.table({"pid": pa.array(pid, pa.int64()), "colour": colour, "x": x,
                     "secret_column": [0] * len(pid)})


class SourceContract:
    """Shared tests; see the module docstring for what a subclass provides."""

    source_name: ClassVar[str] = ""
    forbidden: ClassVar[tuple[str, ...]] = ()

    @pytest.fixture
    def adapter_options(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def source(self, adapter_options: dict[str, Any],
               config_overrides: dict[str, Any]) -> Iterator[SqlSource]:
        config = Config.model_validate({"adapters": {self.source_name: adapter_options},
                                        "engines": {}, **config_overrides})
        loaded = load_plugins(config, with_store=False)
        adapter = loaded.adapters[self.source_name]
        assert isinstance(adapter, SqlSource)
        yield adapter
        adapter.close()

    @pytest.fixture
    def opened(self, source: SqlSource, place: Place) -> Iterator[Callable[..., SqlTarget]]:
        targets: list[SqlTarget] = []

        def open_(table: Any, metadata: Metadata, name: str = "people") -> SqlTarget:
            target = source.open(name, place(table, name), metadata)
            targets.append(target)
            return target

        yield open_
        for target in targets:
            target.close()

    def test_is_a_source_with_a_dialect(self, source: SqlSource) -> None:
        assert source.name == self.source_name
        assert source.dialect

    def test_only_declared_columns(self, opened: Callable[..., SqlTarget]) -> None:
        target = opened(contract_frame(), contract_metadata())
        assert target.dialect
        assert set(target.columns) == {"pid", "colour", "x"}
        names, *_ = target.fetch("SELECT * FROM df")
        assert "secret_column" not in [str(n).lower() for n in names]

    def test_values_outside_categories_are_null(self, opened: Callable[..., SqlTarget]) -> None:
        target = opened(contract_frame(), contract_metadata())
        _, *rows = target.fetch("SELECT DISTINCT colour FROM df")
        assert {r[0] for r in rows} <= {"red", "blue", None}

    def test_contributions_bounded_by_max_ids(self, opened: Callable[..., SqlTarget]) -> None:
        target = opened(contract_frame(), contract_metadata())
        _, *rows = target.fetch("SELECT pid, count(*) FROM df GROUP BY pid")
        counts = {r[0]: r[1] for r in rows}
        assert None not in counts  # rows without an id are dropped
        assert set(counts) == set(range(5)) and all(c == 2 for c in counts.values())

    def test_a_persons_rows_do_not_depend_on_others(self, opened: Callable[..., SqlTarget]) -> None:
        import pyarrow.compute as pc

        full = contract_frame()
        neighbour = full.filter(pc.fill_null(pc.not_equal(full["pid"], 3), True))
        query = "SELECT pid, x FROM df WHERE pid <> 3 ORDER BY pid, x"
        a = opened(full, contract_metadata(), "a").fetch(query)
        b = opened(neighbour, contract_metadata(), "b").fetch(query)
        assert a[1:] == b[1:]

    def test_rows_over_the_declared_bound_are_refused(self, source: SqlSource, place: Place) -> None:
        cache = TargetCache()
        metadata = contract_metadata(rows=3)
        with pytest.raises(DatasetUnavailable) as info:
            cache.get("k", source, "people", place(contract_frame(), "people"), metadata)
        assert info.value.touched
        ok = contract_metadata(rows=10)
        target = cache.get("k2", source, "people", place(contract_frame(), "people"), ok)
        assert target.check_rows() == 10
        cache.clear()

    def test_lock_down(self, opened: Callable[..., SqlTarget]) -> None:
        target = opened(contract_frame(), contract_metadata())
        for statement in self.forbidden:
            with pytest.raises(Exception):  # noqa: B017 - any database error will do
                target.fetch(statement)
        _, (count,) = target.fetch("SELECT count(*) FROM df")
        assert count == 10

    def test_options_outside_the_allowed_places_are_refused(self, source: SqlSource,
                                                            outside: dict[str, Any]) -> None:
        with pytest.raises(InvalidRequest):
            source.check_options(outside)

    def test_version_changes_with_the_data(self, source: SqlSource, place: Place) -> None:
        options = place(contract_frame(), "v")
        first = source.version(options)
        again = place(contract_frame(people=6), "v")
        assert again == options
        assert source.version(options) != first or first is None

    # -- reading into memory (sources with ``loadable``) ---------------------------------------
    def test_load_table_applies_the_rules(self, source: SqlSource, place: Place) -> None:
        import pyarrow as pa

        if not source.loadable:
            pytest.skip("this source does not stream datasets into memory")
        loaded = source.load_table("people", place(contract_frame(), "people"),
                                   contract_metadata(rows=20), None, None)
        table = loaded.table
        assert table.column_names == ["pid", "colour", "x"]
        assert table.schema.field("pid").type == pa.int64()
        assert table.schema.field("x").type == pa.float64()
        pids = table.column("pid").to_pylist()
        assert None not in pids and sorted(set(pids)) == list(range(5))
        assert all(pids.count(p) == 2 for p in range(5))  # max_ids
        assert set(table.column("colour").to_pylist()) <= {"red", "blue", None}

    def test_load_table_limits(self, source: SqlSource, place: Place) -> None:
        if not source.loadable:
            pytest.skip("this source does not stream datasets into memory")
        options = place(contract_frame(), "people")
        for rows, size, limit in ((3, None, "max_load_rows"), (None, 16, "max_load_bytes")):
            with pytest.raises(DatasetUnavailable) as info:
                source.load_table("people", options, contract_metadata(), rows, size)
            assert info.value.touched and f"limits.{limit}" in info.value.message
        with pytest.raises(DatasetUnavailable) as info:  # over the declared rows
            source.load_table("people", options, contract_metadata(rows=3), None, None)
        assert info.value.touched
        assert source.load_table("people", options, contract_metadata(), 10, 10**6).table.num_rows == 10

    def test_load_streams_into_the_cache_file(self, source: SqlSource, place: Place,
                                              tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
        """With the execution pool's data folder, the dataset cache streams the batches into
        the version's IPC file (never holding the table whole) and keeps that file as is: the
        mapped table equals an in-memory load; a refused load leaves no file behind."""
        from lomas_core.cache import DatasetCache
        from lomas_core.models import DatasetDescription

        if not source.loadable:
            pytest.skip("this source does not stream datasets into memory")
        options = place(contract_frame(), "people")
        meta = contract_metadata(rows=20)
        description = DatasetDescription(name="people", adapter=source.name, options=options,
                                         metadata=meta)
        rewrites: list[Path] = []
        write = DatasetCache._write

        def counted(path: Path, table: object) -> None:
            rewrites.append(path)
            write(path, table)

        monkeypatch.setattr(DatasetCache, "_write", staticmethod(counted))
        folder = tmp_path / "cache-files"
        cache = DatasetCache(2**30, 3600, data_dir=folder)
        handle = cache.get(description, source, meta)
        expected = source.load_table("people", options, meta, None, None).table
        assert handle.path is not None and Path(handle.path).parent == folder
        assert handle.table.equals(expected) and rewrites == []
        assert [p.name for p in folder.iterdir()] == [Path(handle.path).name]
        small = DatasetCache(2**30, 3600, data_dir=tmp_path / "cache-small",
                            max_load_bytes=16)
        with pytest.raises(DatasetUnavailable):
            small.get(description, source, meta)
        assert list((tmp_path / "cache-small").iterdir()) == []


class FileSourceContract(SourceContract):
    """The contract for sources of files under ``allowed_dirs``: one Parquet file per dataset
    in ``data_dir``; ``outside`` is a file in a folder next to it."""

    @pytest.fixture
    def data_dir(self, tmp_path: Path) -> Path:
        folder = tmp_path / "data"
        folder.mkdir()
        return folder

    @pytest.fixture
    def place(self, data_dir: Path) -> Place:
        import pyarrow.parquet as pq

        def place(table: Any, name: str) -> dict[str, Any]:
            path = data_dir / f"{name}.parquet"
            pq.write_table(table, path)
            return {"path": str(path)}

        return place

    @pytest.fixture
    def outside(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": str(tmp_path / "elsewhere" / "x.parquet")}


class ParquetFolderPlacement:
    """Mixin for a :class:`FileSourceContract`: a folder of Parquet files (two parts each)."""

    @pytest.fixture
    def place(self, data_dir: Path) -> Place:
        import pyarrow.parquet as pq

        def place(table: Any, name: str) -> dict[str, Any]:
            folder = data_dir / name
            folder.mkdir(exist_ok=True)
            for old in folder.glob("*.parquet"):
                old.unlink()
            half = table.num_rows // 2
            pq.write_table(table.slice(0, half), folder / "part-0.parquet")
            pq.write_table(table.slice(half), folder / "part-1.parquet")
            return {"path": str(folder)}

        return place


class CsvPlacement:
    """Mixin for a :class:`FileSourceContract`: one CSV file per dataset."""

    @pytest.fixture
    def place(self, data_dir: Path) -> Place:
        import pyarrow.csv as pacsv

        def place(table: Any, name: str) -> dict[str, Any]:
            path = data_dir / f"{name}.csv"
            pacsv.write_csv(table, path)
            return {"path": str(path)}

        return place
