"""lomas push-down source: SQL answered by a Spark session over Parquet and CSV files."""

__all__: list[str] = []
