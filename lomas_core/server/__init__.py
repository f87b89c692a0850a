"""The lomas REST server (FastAPI). Build it with :func:`create_app`."""

from lomas_core.server.app import create_app, create_app_from_env

__all__ = ["create_app", "create_app_from_env"]
