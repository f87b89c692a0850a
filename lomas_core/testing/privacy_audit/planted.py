"""Engines with planted privacy bugs: the audit must catch every one of them. Test-only.

* ``audit_undernoised``: charges epsilon, adds the Laplace noise of 2 * epsilon.
* ``audit_exact_key``: a grouped count that lists every key found in the data (no threshold),
  so a key present only in D' is released exactly, with delta = 0 charged.
* ``audit_peeking_cost``: its cost endpoint scales the charge with the real row count, which it
  reads from the dataset file, so the free cost answer depends on the data.
* ``audit_dummy_leak``: keeps the real row count of its last charged run on ``self`` and answers
  dummy queries with it, so the free dummy answers depend on the data.

``honest_count`` is the control: a correctly calibrated noisy count, which must pass.
This module is the entry module of the planted-engine plugin distribution that
:func:`planted_plugin_dir` writes (the same mechanism a third-party engine uses).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from lomas_core import results
from lomas_core.budget import Budget
from lomas_core.data import DataHandle
from lomas_core.engine import DatasetInfo, Engine

__all__ = ["PLANTED_ENGINES", "planted_plugin_dir"]


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epsilon: float = Field(gt=0, le=100)
    column: str | None = None


def _laplace(scale: float, size: int | None = None) -> Any:
    return np.random.default_rng().laplace(0.0, scale, size)


class HonestCount(Engine):
    """A noisy row count with Laplace(max_ids / epsilon) noise: epsilon-DP."""

    name = "honest_count"
    Query = _Query

    def cost(self, query: Any, dataset: DatasetInfo) -> Budget:
        return Budget.of(query.epsilon)

    def run(self, query: Any, data: DataHandle, dataset: DatasetInfo) -> Any:
        scale = dataset.metadata.max_ids / query.epsilon
        return results.value(float(data.table.num_rows + _laplace(scale)))


class UnderNoisedCount(HonestCount):
    """Planted bug: the noise is calibrated to twice the charged epsilon."""

    name = "audit_undernoised"

    def run(self, query: Any, data: DataHandle, dataset: DatasetInfo) -> Any:
        scale = dataset.metadata.max_ids / (2 * query.epsilon)
        return results.value(float(data.table.num_rows + _laplace(scale)))


class ExactKeyGroups(HonestCount):
    """Planted bug: group keys come from the data, not from public metadata or a threshold."""

    name = "audit_exact_key"

    def run(self, query: Any, data: DataHandle, dataset: DatasetInfo) -> Any:
        column = query.column or next(iter(dataset.metadata.columns))
        values = data.table.column(column).to_pylist()
        keys = sorted({str(v) for v in values if v is not None})
        scale = dataset.metadata.max_ids / query.epsilon
        rows = [[k, float(sum(1 for v in values if str(v) == k) + _laplace(scale))] for k in keys]
        return results.table([column, "count"], ["string", "float"], rows)


class PeekingCost(HonestCount):
    """Planted bug: the cost reads the data (the actual row count) to 'adjust' the charge."""

    name = "audit_peeking_cost"
    base_dir: Path = Path(".")

    @classmethod
    def create(cls, options: Any, context: Any) -> PeekingCost:
        engine = cls(options, context)
        engine.base_dir = Path(str(context.config.base_dir) if context is not None else ".")
        return engine

    def cost(self, query: Any, dataset: DatasetInfo) -> Budget:
        import pyarrow.parquet as pq

        found = sorted(self.base_dir.rglob(f"{dataset.name}.parquet"))
        rows = pq.read_metadata(found[0]).num_rows if found else 0
        # A "size-adjusted" charge: a millionth more per row, so one more person shows.
        return Budget.of(round(query.epsilon * (1 + rows / 1_000_000), 9))


class DummyLeak(HonestCount):
    """Planted bug: per-request state on ``self`` carries the real row count into dummy answers."""

    name = "audit_dummy_leak"
    real_rows = 0

    def run(self, query: Any, data: DataHandle, dataset: DatasetInfo) -> Any:
        if data.dummy:
            return results.value(float(self.real_rows))
        self.real_rows = data.table.num_rows
        return super().run(query, data, dataset)


PLANTED_ENGINES: dict[str, type[Engine]] = {
    cls.name: cls for cls in (HonestCount, UnderNoisedCount, ExactKeyGroups, PeekingCost, DummyLeak)}


def planted_plugin_dir(root: Path) -> Path:
    """Write the plugin distribution that provides the planted engines; returns its directory."""
    from lomas_core.testing.harness import write_plugin_distribution

    return write_plugin_distribution(root, "lomas-audit-planted",
                                     {"lomas.engines": {n: f"{__name__}:{cls.__name__}"
                                                       for n, cls in PLANTED_ENGINES.items()}})
