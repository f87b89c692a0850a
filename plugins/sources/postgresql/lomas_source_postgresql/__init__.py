"""lomas push-down source over a PostgreSQL table, queried read-only where it lives."""

__all__: list[str] = []
