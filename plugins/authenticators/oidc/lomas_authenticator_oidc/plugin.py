"""Entry point of the ``oidc`` authenticator (cheap to import: PyJWT loads when it is built)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lomas_core.hookspecs import hookimpl

if TYPE_CHECKING:
    from lomas_core.authenticator import Authenticator
    from lomas_core.context import PluginContext

__all__ = ["lomas_make_authenticator"]


@hookimpl
def lomas_make_authenticator(name: str, options: Mapping[str, Any],
                             context: PluginContext) -> Authenticator | None:
    """Builds the ``oidc`` authenticator from its options (see :class:`OidcOptions`)."""
    if name != "oidc":
        return None
    from lomas_authenticator_oidc.authenticator import OidcAuthenticator
    from lomas_authenticator_oidc.options import parse_options

    return OidcAuthenticator(parse_options(options, context))
