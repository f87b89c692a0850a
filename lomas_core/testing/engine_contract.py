"""Contract tests every DP engine plugin must pass.

Subclass :class:`EngineContract` in the engine's test suite and provide the fixtures::

    from lomas_core.testing.engine_contract import EngineContract

    class TestMyEngine(EngineContract):
        engine_name = "myengine"                  # the entry point's name
        heavy_modules = ("heavylib",)              # not imported by the engine class's module

        @pytest.fixture
        def valid_payloads(self):                  # payloads the engine must accept on `dataset`
            return [{"...": "..."}]

        @pytest.fixture
        def invalid_payloads(self):                # payloads refused with InvalidQuery by parse or cost
            return [{"...": "..."}]

The base class supplies ``dataset`` (public metadata of a small table) and ``dummy_data`` (a
:class:`~lomas_core.data.DataHandle` over a generated table); override them to fit the engine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from typing import Any, ClassVar

import pyarrow as pa
import pytest

from lomas_core.budget import Budget
from lomas_core.config import Config, PluginConfig
from lomas_core.data import DataHandle
from lomas_core.engine import DatasetInfo, Engine
from lomas_core.errors import InvalidQuery
from lomas_core.metadata import Metadata
from lomas_core.plugins import load_plugins

__all__ = ["CONTRACT_METADATA", "EngineContract", "contract_table"]

CONTRACT_METADATA: dict[str, Any] = {
    "max_ids": 1,
    "rows": 200,
    "row_privacy": True,
    "columns": {
        "group": {"type": "string", "categories": ["a", "b", "c"]},
        "age": {"type": "int", "lower": 0, "upper": 100},
        "income": {"type": "float", "lower": 0.0, "upper": 1000.0},
        "flag": {"type": "boolean"},
    },
}


def contract_table(rows: int = 200) -> pa.Table:
    """A deterministic table matching :data:`CONTRACT_METADATA`."""
    return pa.table({
        "group": [("a", "b", "c")[i % 3] for i in range(rows)],
        "age": [(i * 7) % 101 for i in range(rows)],
        "income": [float((i * 37) % 1000) for i in range(rows)],
        "flag": [i % 2 == 0 for i in range(rows)],
    })


def _is_json_result(result: Any) -> bool:
    json.dumps(result, allow_nan=False)
    if isinstance(result, dict) and result.get("type") == "table":
        return len(result["columns"]) == len(result["dtypes"]) and all(
            len(row) == len(result["columns"]) for row in result["rows"])
    return isinstance(result, dict) and result.get("type") == "value"


class EngineContract:
    """Shared tests; see the module docstring for the fixtures a subclass provides."""

    engine_name: ClassVar[str] = ""
    heavy_modules: ClassVar[tuple[str, ...]] = ()
    engine_options: ClassVar[dict[str, Any]] = {}

    @pytest.fixture
    def engine(self) -> Any:
        config = Config(engines={self.engine_name: dict(self.engine_options)}, adapters={},
                        store=PluginConfig(name="sqlite", options={"path": ":memory:"}))
        loaded = load_plugins(config, with_store=False)
        yield loaded.engines[self.engine_name]
        loaded.engines[self.engine_name].close()

    @pytest.fixture
    def dataset(self) -> DatasetInfo:
        return DatasetInfo(name="contract", metadata=Metadata.model_validate(CONTRACT_METADATA))

    @pytest.fixture
    def dummy_data(self, dataset: DatasetInfo) -> DataHandle:
        return DataHandle(dataset.name, "contract-v1", contract_table(), dummy=True)

    # -- the contract ------------------------------------------------------------------------------
    def test_is_engine_with_name(self, engine: Engine) -> None:
        assert isinstance(engine, Engine)
        assert engine.name == self.engine_name

    def test_engine_module_is_light(self) -> None:
        """Importing the entry point's class (what start-up and ``lomas admin`` do) does not
        import the heavy libraries: they load when the engine is built or warmed up."""
        from importlib.metadata import entry_points

        [ep] = {ep.value: ep for ep in entry_points(group="lomas.engines", name=self.engine_name)
                }.values()
        module = ep.value.split(":")[0].strip()
        code = (f"import sys, {module}\n"
                f"heavy = [m for m in {list(self.heavy_modules)!r} if m in sys.modules]\n"
                "assert not heavy, heavy\n")
        subprocess.run([sys.executable, "-c", code], check=True)

    @pytest.mark.parametrize("garbage", [{}, {"unexpected": 1}, {"epsilon": "many"}])
    def test_parse_refuses_garbage(self, engine: Engine, garbage: dict[str, Any]) -> None:
        with pytest.raises(InvalidQuery):
            engine.parse(garbage)

    def test_cost_is_exact_and_deterministic(self, engine: Engine, dataset: DatasetInfo,
                                              valid_payloads: list[dict[str, Any]]) -> None:
        for payload in valid_payloads:
            first = engine.cost(engine.parse(payload), dataset)
            again = engine.cost(engine.parse(payload), dataset)
            assert isinstance(first, Budget)
            assert first == again
            assert first.epsilon >= 0 and first.delta >= 0

    def test_invalid_payloads_refused_before_data(self, engine: Engine, dataset: DatasetInfo,
                                                  invalid_payloads: list[dict[str, Any]]) -> None:
        for payload in invalid_payloads:
            with pytest.raises(InvalidQuery):
                engine.cost(engine.parse(payload), dataset)

    def test_run_returns_json_result(self, engine: Engine, dataset: DatasetInfo,
                                     dummy_data: DataHandle,
                                     valid_payloads: list[dict[str, Any]]) -> None:
        for payload in valid_payloads:
            result = engine.run(engine.parse(payload), dummy_data, dataset)
            assert _is_json_result(result), result

    def test_concurrent_runs_are_independent(self, engine: Engine, dataset: DatasetInfo,
                                             dummy_data: DataHandle,
                                             valid_payloads: list[dict[str, Any]]) -> None:
        errors: list[BaseException] = []

        def work(payload: dict[str, Any]) -> None:
            try:
                for _ in range(3):
                    assert _is_json_result(engine.run(engine.parse(payload), dummy_data, dataset))
            except BaseException as exc:  # noqa: BLE001 - collected and re-raised below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(p,)) for p in valid_payloads * 2]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
