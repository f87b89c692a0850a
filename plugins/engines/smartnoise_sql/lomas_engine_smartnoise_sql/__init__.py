"""The ``smartnoise_sql`` DP engine for lomas: differentially private SQL with SmartNoise-SQL.

Light on purpose: SmartNoise-SQL, DuckDB and pandas are imported only when the engine is built.
"""

from __future__ import annotations

__all__: list[str] = []
