"""What every plugin class shares, whatever its kind.

A plugin is a class named by an entry point. The core reads the class's :attr:`PluginBase.Options`
model, validates the config section against it, builds the object with :meth:`PluginBase.create`
and then gives it its one name, the entry point's (:attr:`PluginBase.name`). A plugin never writes
its own name and never validates its own options.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from typing import Self

    from lomas_core.context import PluginContext

__all__ = ["NoOptions", "PluginBase"]


class NoOptions(BaseModel):
    """The options of a plugin that takes none: any key is refused."""

    model_config = ConfigDict(extra="forbid")


class PluginBase:
    """Base of :class:`~lomas_core.engine.Engine`, :class:`~lomas_core.adapter.Adapter`,
    :class:`~lomas_core.store.BudgetStore` and :class:`~lomas_core.observer.Observer`."""

    #: The entry point's name, set by the core when it builds the object (never by the plugin).
    name: str = ""
    #: The pydantic model of this plugin's config section (``extra="forbid"`` recommended).
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, options: Any = None, context: PluginContext | None = None) -> None:
        """Keep the validated options and the context (plugins with their own ``__init__`` need
        not call this)."""
        self.options = options
        self.context = context

    @classmethod
    def create(cls, options: Any, context: PluginContext) -> Self:
        """Build the plugin from its validated ``Options`` instance; override for a constructor
        that takes other arguments (a store opening a database, say)."""
        return cls(options, context)

    def close(self) -> None:
        """Release resources at shutdown."""
