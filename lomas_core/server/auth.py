"""Bearer authentication, the admin role and per-dataset access checks.

Identity comes from the bearer credential only, through the authenticators enabled in the config
(tried in order, see :mod:`lomas_core.authenticator`): by default the built-in ``token``
authenticator, which hashes the token and looks it up in the store. A user may see
and query only datasets granted to them; every other dataset name gets the same 403 body, whether
the dataset exists or not.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from lomas_core.authenticator import authenticate
from lomas_core.errors import AccessDenied, Suspended, Unauthenticated
from lomas_core.models import Grant, User
from lomas_core.server.state import ServerState, get_state
from lomas_core.tokens import hash_token

__all__ = ["access_denied", "admin_user", "bootstrap_admin", "current_user", "require_grant"]

#: Declares the bearer scheme in the OpenAPI document (the "Authorize" button of /docs).
_bearer = HTTPBearer(auto_error=False,
                     description="Your lomas API token, or an access token of the server's "
                                 "identity provider when single sign-on is enabled")


async def current_user(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> User:
    """The user the request's bearer credential identifies, with its admin role; 401 when it is
    missing or no enabled authenticator accepts it (``details.reason`` says why), 403
    ``suspended`` when its user is suspended."""
    token = credentials.credentials.strip() if credentials is not None else ""
    if not token:
        raise Unauthenticated("missing bearer token: send 'Authorization: Bearer <token>'",
                              reason="missing_token")
    state = get_state(request)
    identity = await run_in_threadpool(
        authenticate, list(state.plugins.authenticators.values()), token, state.store)
    user = identity.effective_user()
    if user.suspended:  # before any route runs: nothing is read or charged
        raise Suspended("your account is suspended; contact an administrator")
    return user


async def admin_user(user: Annotated[User, Depends(current_user)]) -> User:
    """The authenticated user, who must be an admin (403 otherwise)."""
    if not user.is_admin:
        raise AccessDenied("this endpoint needs the admin role")
    return user


def access_denied(dataset: str) -> AccessDenied:
    """The one refusal for a dataset the caller may not use (same body whether it exists or not)."""
    return AccessDenied(f"you have no access to dataset '{dataset[:100]}'")


async def require_grant(state: ServerState, user: User, dataset: str) -> Grant:
    """The caller's grant on ``dataset``; 403 :func:`access_denied` when there is none."""
    grant = await run_in_threadpool(state.store.get_grant, user.name, dataset)
    if grant is None:
        raise access_denied(dataset)
    return grant


def bootstrap_admin(state: ServerState) -> None:
    """Create the configured bootstrap admin with the token from its secret, once (blocking).

    Nothing happens when the token is already known. A token for an existing admin is added (a
    rotated secret works after restart); an existing non-admin user of that name stops start-up.
    """
    from lomas_core.errors import ConfigError, Conflict, NotFound

    spec = state.config.bootstrap_admin
    if spec is None:
        return
    token = state.config.secret(spec.token)
    if not token.strip():
        raise ConfigError(f"bootstrap_admin: secret '{spec.token}' is empty")
    token_hash = hash_token(token.strip())
    store = state.store
    owner = store.user_for_token(token_hash)
    if owner is not None:
        return
    try:
        existing = store.get_user(spec.user)
    except NotFound:
        try:
            store.add_user(User(name=spec.user, is_admin=True))
        except Conflict:  # another worker created it first
            pass
        existing = store.get_user(spec.user)
    if not existing.is_admin:
        raise ConfigError(f"bootstrap_admin: user '{spec.user}' exists and is not an admin")
    try:
        store.add_token(spec.user, token_hash)
    except Conflict:  # another worker added it first
        pass
