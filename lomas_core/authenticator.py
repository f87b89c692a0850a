"""The authenticator interface: who is calling, from the bearer credential of a request.

An authenticator plugin is an :class:`Authenticator` subclass named by an entry point in the
``lomas.authenticators`` group (see :mod:`lomas_core.plugins`). The server tries the
authenticators enabled in the config's ``authenticators`` section in order, with the request's
bearer credential:

* ``None`` means "not mine": the credential is not of this authenticator's kind (a JWT for the
  ``token`` authenticator, an opaque token for ``oidc``); the next authenticator is tried.
* An :class:`Identity` means "mine and valid": the request runs as that lomas user.
* :class:`~lomas_core.errors.Unauthenticated` (built with :func:`reject`) means "mine and invalid":
  the request is refused with 401 and the reason, and no other authenticator is tried.

When no authenticator claims the credential, the request is refused with 401 as well. Suspension is
checked by the core after an identity is found, whatever the authenticator.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lomas_core.errors import Unauthenticated
from lomas_core.models import User
from lomas_core.plugin_base import PluginBase

if TYPE_CHECKING:
    from lomas_core.store import BudgetStore

__all__ = ["Authenticator", "Identity", "authenticate", "reject"]


@dataclass(frozen=True)
class Identity:
    """A caller an authenticator vouches for.

    Attributes:
        user: the lomas user, as the store has it (created on first login when allowed).
        is_admin: whether this request has the admin role (from the store or from a claim).
        authenticator: the short name of the authenticator that vouched (for logs).
        subject: the identity provider's subject, when there is one (for logs; never a secret).
    """

    user: User
    is_admin: bool
    authenticator: str
    subject: str | None = None

    def effective_user(self) -> User:
        """The user with this request's admin role applied."""
        if self.user.is_admin == self.is_admin:
            return self.user
        return self.user.model_copy(update={"is_admin": self.is_admin})


def reject(reason: str, message: str) -> Unauthenticated:
    """The 401 for a credential that is this authenticator's but invalid.

    ``reason`` is a stable machine-readable word (``token_expired``, ``wrong_audience``, ...) sent
    as ``details.reason``; ``message`` says what is wrong in words, without echoing the credential.
    """
    return Unauthenticated(message, reason=reason)


class Authenticator(PluginBase, ABC):
    """Turns a bearer credential into an :class:`Identity` (blocking; called from worker threads).

    Implementations must be safe to call from many threads at once and must never log or echo the
    credential.
    """

    @abstractmethod
    def authenticate(self, credential: str, store: BudgetStore) -> Identity | None:
        """The caller presenting ``credential`` (the bearer value, stripped, never empty).

        Args:
            credential: the bearer value of the request's ``Authorization`` header.
            store: the server's budget store, to look users up (and create them when allowed).

        Returns:
            The identity, or None when the credential is not of this authenticator's kind.

        Raises:
            Unauthenticated: the credential is of this kind but invalid (use :func:`reject`).
            LomasError: anything else that stops the check (e.g. 503 when a provider is down).
        """


def authenticate(authenticators: Sequence[Authenticator], credential: str,
                 store: BudgetStore) -> Identity:
    """The identity of ``credential`` from the first authenticator that claims it.

    Raises:
        Unauthenticated: no authenticator claims it, or the one that does refuses it.
    """
    for authenticator in authenticators:
        identity = authenticator.authenticate(credential, store)
        if identity is not None:
            return identity
    raise reject("unknown_token", "unknown, expired or revoked token")
