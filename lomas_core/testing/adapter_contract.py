"""Contract tests every data-adapter plugin must pass.

Subclass :class:`AdapterContract` and provide:

- ``adapter_name`` and ``adapter_options`` (the config options) as class attributes or fixtures;
- a ``source`` fixture returning :class:`Source`: dataset options pointing at a CSV and a Parquet copy
  of :func:`lomas_core.testing.engine_contract.contract_table`, options for a missing object, and a
  ``change()`` callable that rewrites the source so its version changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from lomas_core.adapter import Adapter, Loaded
from lomas_core.config import Config
from lomas_core.errors import DatasetUnavailable, InvalidRequest
from lomas_core.plugins import load_plugins
from lomas_core.testing.engine_contract import contract_table
from lomas_core.testing.tables import table_bytes

__all__ = ["AdapterContract", "Source", "table_bytes"]


@dataclass
class Source:
    """Dataset options an adapter contract test reads from."""

    csv: dict[str, Any]
    parquet: dict[str, Any]
    missing: dict[str, Any]
    change: Callable[[], None]
    config_overrides: dict[str, Any] | None = None


class AdapterContract:
    """Shared tests; see the module docstring for what a subclass provides."""

    adapter_name: ClassVar[str] = ""

    @pytest.fixture
    def adapter_options(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def adapter(self, adapter_options: dict[str, Any], source: Source) -> Any:
        config = Config(adapters={self.adapter_name: adapter_options}, engines={},
                        **(source.config_overrides or {}))
        loaded = load_plugins(config, with_store=False)
        yield loaded.adapters[self.adapter_name]
        loaded.adapters[self.adapter_name].close()

    def test_is_adapter_with_name(self, adapter: Adapter) -> None:
        assert isinstance(adapter, Adapter)
        assert adapter.name == self.adapter_name

    @pytest.mark.parametrize("fmt", ["csv", "parquet"])
    def test_load_reads_the_table(self, adapter: Adapter, source: Source, fmt: str) -> None:
        options = getattr(source, fmt)
        adapter.check_options(options)
        loaded = adapter.load("contract", options)
        assert isinstance(loaded, Loaded)
        expected = contract_table()
        assert loaded.table.num_rows == expected.num_rows
        for name in expected.column_names:
            assert loaded.table.column(name).to_pylist() == expected.column(name).to_pylist()

    def test_version_is_stable_then_changes(self, adapter: Adapter, source: Source) -> None:
        first = adapter.version(source.csv)
        assert first == adapter.version(source.csv)
        loaded = adapter.load("contract", source.csv)
        if first is not None:
            assert loaded.version == first
        source.change()
        changed = adapter.version(source.csv)
        if first is not None:
            assert changed != first

    def test_missing_source_is_unavailable_untouched(self, adapter: Adapter, source: Source) -> None:
        with pytest.raises(DatasetUnavailable) as info:
            adapter.load("contract", source.missing)
        assert info.value.touched is False
        assert "contract" in info.value.message

    @pytest.mark.parametrize("garbage", [{}, {"unexpected": 1}])
    def test_bad_options_refused(self, adapter: Adapter, garbage: dict[str, Any]) -> None:
        with pytest.raises(InvalidRequest):
            adapter.check_options(garbage)


