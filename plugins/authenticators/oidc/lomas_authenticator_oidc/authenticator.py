"""The ``oidc`` authenticator: JWT access tokens of one OpenID provider.

A credential is claimed when it looks like a JWT (three dot-separated parts whose header is a JSON
object with ``alg``); anything else is left to the next authenticator. A claimed token is accepted
only when its algorithm is allowed and fits the key, its signature verifies with a key the issuer
publishes, and its ``iss``, ``aud``, ``exp`` and ``nbf`` hold (with ``clock_skew_seconds``). Every
refusal is a 401 whose ``details.reason`` says which check failed; no token content is echoed.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import TYPE_CHECKING, Any

from lomas_authenticator_oidc.keys import KeySet
from lomas_authenticator_oidc.options import OidcOptions
from lomas_core.api import (
    NAME_PATTERN,
    Authenticator,
    Conflict,
    Identity,
    NotFound,
    PluginContext,
    User,
    reject,
)

if TYPE_CHECKING:
    from lomas_core.api import BudgetStore

__all__ = ["OidcAuthenticator", "claim_at", "jwt_header"]

_NAME = re.compile(NAME_PATTERN)
_MAX_TOKEN_CHARS = 16_384


def jwt_header(credential: str) -> dict[str, Any] | None:
    """The decoded header of a JWT-shaped credential, or None when it is not one."""
    parts = credential.split(".")
    if len(parts) != 3 or len(credential) > _MAX_TOKEN_CHARS:
        return None
    try:
        raw = base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4))
        header = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    return header if isinstance(header, dict) and "alg" in header else None


def claim_at(claims: dict[str, Any], path: str) -> Any:
    """The claim at a dotted ``path`` (``realm_access.roles``), or None."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


class OidcAuthenticator(Authenticator):
    """Checks access tokens against the issuer's discovery document and JWKS."""

    Options = OidcOptions

    @classmethod
    def create(cls, options: OidcOptions, context: PluginContext) -> OidcAuthenticator:
        """Resolve ``ca_bundle`` against the config file's folder; keys are fetched on first use."""
        if options.ca_bundle is not None:
            options = options.model_copy(
                update={"ca_bundle": str(context.config.resolve_path(options.ca_bundle))})
        return cls(options)

    def __init__(self, options: OidcOptions, keys: KeySet | None = None) -> None:
        super().__init__(options)
        self.options: OidcOptions = options
        self.keys = keys or KeySet(options)

    def authenticate(self, credential: str, store: BudgetStore) -> Identity | None:
        header = jwt_header(credential)
        if header is None:
            return None
        claims = self._verify(credential, header)
        user = self._user(claims, store)
        return Identity(user=user, is_admin=self._is_admin(claims, user), authenticator=self.name,
                        subject=str(claims.get("sub"))[:200] if claims.get("sub") else None)

    # -- checks ------------------------------------------------------------------------------------
    def _verify(self, credential: str, header: dict[str, Any]) -> dict[str, Any]:
        import jwt

        opts = self.options
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in opts.algorithms:
            raise reject("algorithm_not_allowed",
                         f"tokens signed with this algorithm are not accepted; allowed: "
                         f"{', '.join(opts.algorithms)}")
        kid = header.get("kid")
        key = self.keys.key_for(kid if isinstance(kid, str) else None, alg)
        if key is None:
            raise reject("unknown_key", "the token is signed with a key the identity provider "
                                        "does not publish (or one that does not fit its algorithm)")
        try:
            claims: dict[str, Any] = jwt.decode(
                credential, key=key.key, algorithms=[alg], audience=opts.audience,
                issuer=opts.issuer, leeway=opts.clock_skew_seconds,
                options={"require": ["exp", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            raise reject("token_expired", "the access token has expired; log in again") from None
        except jwt.ImmatureSignatureError:
            raise reject("token_not_yet_valid", "the access token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise reject("wrong_audience", "the access token is not meant for this lomas server "
                                           "(audience)") from None
        except jwt.InvalidIssuerError:
            raise reject("wrong_issuer", "the access token was issued by an identity provider "
                                         "this server does not trust") from None
        except jwt.MissingRequiredClaimError as exc:
            raise reject("missing_claim", f"the access token has no '{exc.claim}' claim") from None
        except jwt.InvalidSignatureError:
            raise reject("invalid_signature", "the access token's signature does not verify "
                                              "(tampered or forged)") from None
        except jwt.InvalidTokenError:
            raise reject("malformed_token", "the access token is malformed") from None
        return claims

    def _user(self, claims: dict[str, Any], store: BudgetStore) -> User:
        claim = self.options.user_claim
        name = claim_at(claims, claim)
        if not isinstance(name, str) or not _NAME.match(name):
            raise reject("invalid_user_claim",
                         f"the token's '{claim}' claim is missing or not a valid lomas user name")
        try:
            return store.get_user(name)
        except NotFound:
            if not self.options.create_users:
                raise reject("unknown_user", f"'{name}' is not a user of this lomas server; "
                                             "ask an administrator to add you") from None
        try:
            store.add_user(User(name=name))  # no grants, not admin
        except Conflict:  # created by a concurrent first request
            pass
        return store.get_user(name)

    def _is_admin(self, claims: dict[str, Any], user: User) -> bool:
        if self.options.admin_claim is None:
            return user.is_admin
        value = claim_at(claims, self.options.admin_claim)
        if isinstance(value, list):
            return self.options.admin_value in value
        return bool(value == self.options.admin_value)
