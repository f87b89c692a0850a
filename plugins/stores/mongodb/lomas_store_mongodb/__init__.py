"""The ``mongodb`` budget store for lomas.

Importing this package is cheap: pymongo is imported only when the store is built.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
