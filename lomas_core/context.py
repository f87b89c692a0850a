"""What plugins receive from the core when they are built."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from lomas_core.config import Config

__all__ = ["PluginContext"]


@dataclass
class PluginContext:
    """The server's configuration, a secret reader and a logger, handed to every plugin factory."""

    config: Config
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("lomas"))
    #: Store factories may create a missing or empty store only when this is true (``lomas admin
    #: init``, ``lomas demo``, an import target); otherwise they refuse to open one.
    create_store: bool = False

    def secret(self, name: str) -> str:
        """The value of the secret named ``name`` in the config's ``secrets`` section.

        Never log it, store it, or put it in an error message.
        """
        return self.config.secret(name)
