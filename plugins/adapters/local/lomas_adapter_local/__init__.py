"""The ``local`` data adapter for lomas."""

from lomas_adapter_local.adapter import LocalAdapter

__all__ = ["LocalAdapter"]
