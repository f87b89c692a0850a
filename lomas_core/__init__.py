"""lomas: remote differentially private queries on sensitive datasets.

This package is the server core. Plugins import :data:`hookimpl` from here::

    from lomas_core import hookimpl
"""

from lomas_core.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl"]
