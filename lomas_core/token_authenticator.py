"""The built-in ``token`` authenticator: hashed bearer tokens issued by admins.

A token is hashed and looked up in the store; unknown, expired and revoked tokens are not claimed
(the next authenticator may know them, and the core refuses what nobody claims). The admin role is
the store's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lomas_core.authenticator import Authenticator, Identity
from lomas_core.tokens import hash_token

if TYPE_CHECKING:
    from lomas_core.store import BudgetStore

__all__ = ["TokenAuthenticator"]


class TokenAuthenticator(Authenticator):
    """Bearer tokens issued with ``lomas admin token``, stored as SHA-256 hashes (no options)."""

    def authenticate(self, credential: str, store: BudgetStore) -> Identity | None:
        user = store.user_for_token(hash_token(credential))
        if user is None:
            return None
        return Identity(user=user, is_admin=user.is_admin, authenticator=self.name)

