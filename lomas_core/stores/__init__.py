"""Built-in budget stores. Only :mod:`lomas_core.stores.sqlite` ships with the core.

Importing this package is cheap: the ``sqlite`` entry point names
:class:`lomas_core.stores.sqlite.SQLiteStore`, imported only when that store is enabled.
"""

__all__: list[str] = []
