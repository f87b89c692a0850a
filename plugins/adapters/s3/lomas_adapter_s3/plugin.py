"""Entry point module: registers the ``s3`` adapter with lomas (s3fs is imported lazily)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lomas_core import hookimpl
from lomas_core.adapter import Adapter
from lomas_core.context import PluginContext


@hookimpl
def lomas_make_adapter(name: str, options: Mapping[str, Any], context: PluginContext) -> Adapter | None:
    if name != "s3":
        return None
    from lomas_adapter_s3.adapter import S3Adapter

    return S3Adapter(options, context)
