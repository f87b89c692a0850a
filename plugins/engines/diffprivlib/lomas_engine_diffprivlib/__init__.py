"""lomas DP engine training DiffPrivLib pipelines described as data (no pickle either way).

Importing this package is cheap: DiffPrivLib and scikit-learn are imported only when the engine is
built.
"""

__all__: list[str] = []
