"""Adapters built into the core (loaded through their entry points like any plugin)."""

__all__: list[str] = []
