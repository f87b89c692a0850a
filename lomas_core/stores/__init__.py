"""Built-in budget stores. Only :mod:`lomas_core.stores.sqlite` ships with the core.

Importing this package is cheap: the store modules are imported by the ``sqlite`` entry point's
hook (:mod:`lomas_core.stores.sqlite_plugin`) when the store is built.
"""

__all__: list[str] = []
