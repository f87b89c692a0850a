"""lomas push-down source over Parquet and CSV files read by DuckDB in place."""

__all__: list[str] = []
