"""lomas DP engine running OpenDP measurement pipelines and OpenDP polars plans.

Importing this package is cheap: OpenDP and polars are imported only when the engine is built.
"""

__all__: list[str] = []
