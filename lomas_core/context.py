"""What plugins receive from the core when they are built."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from lomas_core.config import Config, SecretRef

__all__ = ["PluginContext"]


@dataclass
class PluginContext:
    """The server's configuration, a secret reader and a logger, handed to every plugin factory.

    An adapter receives a context bound to its name (:meth:`for_adapter`): it reads only the
    secrets whose entry names it under ``adapters``, never the core's (``bootstrap_admin``) or the
    store's. Engines and stores receive the unbound context.
    """

    config: Config
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("lomas"))
    #: Store factories may create a missing or empty store only when this is true (``lomas admin
    #: init``, ``lomas demo``, an import target); otherwise they refuse to open one.
    create_store: bool = False
    #: The adapter this context belongs to; None for the core, engines and stores.
    adapter: str | None = None

    def for_adapter(self, name: str) -> PluginContext:
        """This context, bound to the adapter called ``name``."""
        return replace(self, adapter=name)

    def secret_ref(self, name: str) -> SecretRef:
        """The entry of the secret called ``name`` (where it may be sent), never its value.

        Raises ConfigError when it is not defined or (for an adapter) not scoped to this adapter.
        """
        return self.config.secret_ref(name, adapter=self.adapter)

    def secret(self, name: str) -> str:
        """The value of the secret named ``name`` in the config's ``secrets`` section.

        For an adapter, only a secret scoped to it; the adapter must still check that the
        destination is one the entry allows (:meth:`secret_ref`) before sending it anywhere.
        Never log it, store it, or put it in an error message.
        """
        return self.config.secret(name, adapter=self.adapter)
