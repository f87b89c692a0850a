"""Single sign-on for researchers: OAuth 2.0 device authorization (RFC 8628) and token providers.

When a lomas server trusts an OpenID provider, log in once per session instead of pasting a token::

    client = Client(url="https://lomas.example.org", dataset_name="census")
    client.login(issuer="https://id.example.org/realms/research", client_id="lomas-cli")
    # prints: "To log in, open https://id.example.org/device and enter the code ABCD-EFGH"

The access token is refreshed before it expires, as long as the provider issued a refresh token.
Any callable returning a bearer token can be passed as ``Client(token_provider=...)`` instead (a
token read from a file your institution's tooling keeps fresh, for instance). Only httpx is used.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import httpx

from lomas_client.errors import AuthenticationError, ConnectionFailedError

__all__ = ["DEVICE_GRANT", "BearerAuth", "DeviceCode", "LoginError", "OidcSession", "TokenProvider"]

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: A callable returning the bearer token to send (called before every request).
TokenProvider = Callable[[], str]


class LoginError(AuthenticationError):
    """Logging in failed (``login_expired``, ``login_denied``, ``login_failed``) or the session
    can no longer be refreshed (``login_required``): call ``client.login()`` again."""


class BearerAuth(httpx.Auth):
    """Sends ``Authorization: Bearer <provider()>`` on every request.

    When the server answers 401 and the provider can refresh (an :class:`OidcSession`), the token
    is refreshed once and the request sent again (a token revoked or signed with a rotated key).
    """

    def __init__(self, provider: TokenProvider) -> None:
        self.provider = provider

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.provider()}"
        response = yield request
        refresh = getattr(self.provider, "force_refresh", None)
        if response.status_code == 401 and callable(refresh):
            token = refresh()
            if token:
                request.headers["Authorization"] = f"Bearer {token}"
                yield request


@dataclass(frozen=True)
class DeviceCode:
    """What the provider's device authorization endpoint answered (RFC 8628 section 3.2)."""

    device_code: str
    user_code: str
    verification_uri: str
    expires_in: float
    interval: float
    verification_uri_complete: str | None = None

    def instructions(self) -> str:
        """The line shown to the researcher."""
        line = f"To log in, open {self.verification_uri} and enter the code {self.user_code}"
        if self.verification_uri_complete:
            line += f"\n(or open {self.verification_uri_complete})"
        return line


class OidcSession:
    """Tokens from an OpenID provider, kept fresh; call it to get a valid access token.

    Args:
        issuer: the provider's issuer URL (its discovery document is read from it).
        client_id: the public client registered for lomas researchers at the provider.
        scope: scopes to ask for (``offline_access`` may be needed for refresh tokens).
        audience: sent as ``audience`` on the device request when the provider needs it (Auth0).
        refresh_margin: refresh this many seconds before the access token expires.
        slow_down_step: seconds added to the polling interval on ``slow_down`` (RFC 8628: 5).
        timeout: seconds for each request to the provider.
        verify: TLS verification (``False`` or a CA bundle path).
    """

    def __init__(self, issuer: str, client_id: str, *, scope: str = "openid",
                 audience: str | None = None, refresh_margin: float = 60.0,
                 slow_down_step: float = 5.0, timeout: float = 10.0,
                 verify: bool | str = True) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.scope = scope
        self.audience = audience
        self.refresh_margin = refresh_margin
        self.slow_down_step = slow_down_step
        self._http = httpx.Client(timeout=timeout, verify=verify, follow_redirects=False)
        self._lock = threading.Lock()
        self._endpoints: dict[str, str] | None = None
        self._access: str | None = None
        self._refresh: str | None = None
        self._expires_at = 0.0

    def close(self) -> None:
        self._http.close()

    # -- provider calls ----------------------------------------------------------------------------
    def _post(self, url: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        try:
            response = self._http.post(url, data=form, headers={"Accept": "application/json"})
        except httpx.TransportError as exc:
            raise ConnectionFailedError(
                "connection_error", f"the identity provider did not answer ({type(exc).__name__})"
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise LoginError("login_failed", f"the identity provider answered HTTP "
                                             f"{response.status_code} without JSON", response.status_code)
        return response.status_code, body

    def endpoints(self) -> dict[str, str]:
        """The provider's device authorization and token endpoints (from discovery, cached)."""
        if self._endpoints is None:
            url = f"{self.issuer}/.well-known/openid-configuration"
            try:
                doc = self._http.get(url).json()
            except (httpx.HTTPError, ValueError):
                raise LoginError("login_failed", f"cannot read the provider's discovery document "
                                                 f"at {url}") from None
            device = doc.get("device_authorization_endpoint") if isinstance(doc, dict) else None
            token = doc.get("token_endpoint") if isinstance(doc, dict) else None
            if not isinstance(device, str) or not isinstance(token, str):
                raise LoginError("login_failed", "the identity provider does not offer the device "
                                                 "authorization flow")
            self._endpoints = {"device": device, "token": token}
        return self._endpoints

    def _store(self, body: dict[str, Any], now: float) -> str:
        access = body.get("access_token")
        if not isinstance(access, str):
            raise LoginError("login_failed", "the identity provider returned no access token")
        self._access = access
        refresh = body.get("refresh_token")
        self._refresh = refresh if isinstance(refresh, str) else self._refresh
        expires = body.get("expires_in")
        self._expires_at = now + (float(expires) if isinstance(expires, int | float) else 300.0)
        return access

    # -- the device flow ---------------------------------------------------------------------------
    def start(self) -> DeviceCode:
        """Ask the provider for a device code (step 1 of RFC 8628)."""
        form = {"client_id": self.client_id, "scope": self.scope}
        if self.audience:
            form["audience"] = self.audience
        status, body = self._post(self.endpoints()["device"], form)
        if status != 200 or not isinstance(body.get("device_code"), str):
            raise LoginError("login_failed", "the identity provider refused the device request: "
                                             f"{str(body.get('error', status))[:100]}", status)
        return DeviceCode(
            device_code=body["device_code"], user_code=str(body.get("user_code", "")),
            verification_uri=str(body.get("verification_uri") or body.get("verification_url", "")),
            verification_uri_complete=body.get("verification_uri_complete"),
            expires_in=float(body.get("expires_in", 600)), interval=float(body.get("interval", 5)))

    def wait(self, code: DeviceCode, *, sleep: Callable[[float], None] = time.sleep) -> None:
        """Poll the token endpoint until the code is approved, denied or expired (RFC 8628 3.4-3.5)."""
        deadline = time.monotonic() + code.expires_in
        interval = code.interval
        form = {"grant_type": DEVICE_GRANT, "device_code": code.device_code,
                "client_id": self.client_id}
        while True:
            if time.monotonic() > deadline:
                raise LoginError("login_expired", "the login code expired before it was approved; "
                                                  "call login() again")
            sleep(interval)
            now = time.time()
            status, body = self._post(self.endpoints()["token"], form)
            if status == 200:
                with self._lock:
                    self._store(body, now)
                return
            error = body.get("error")
            if error == "authorization_pending":
                continue
            if error == "slow_down":
                interval += self.slow_down_step
                continue
            if error == "expired_token":
                raise LoginError("login_expired", "the login code expired before it was approved; "
                                                  "call login() again", status)
            if error == "access_denied":
                raise LoginError("login_denied", "the login was denied at the identity provider",
                                 status)
            raise LoginError("login_failed", f"the identity provider refused the login: "
                                             f"{str(error)[:100]}", status)

    def login(self, out: Callable[[str], Any] = print) -> None:
        """Run the whole device flow: show the URL and code through ``out``, then wait."""
        code = self.start()
        out(code.instructions())
        self.wait(code)

    # -- the token provider --------------------------------------------------------------------------
    def force_refresh(self) -> str | None:
        """A new access token from the refresh token, or None when there is none or it fails."""
        with self._lock:
            if self._refresh is None:
                return None
            now = time.time()
            status, body = self._post(self.endpoints()["token"], {
                "grant_type": "refresh_token", "refresh_token": self._refresh,
                "client_id": self.client_id})
            if status != 200:
                self._refresh = None
                return None
            return self._store(body, now)

    def __call__(self) -> str:
        """A valid access token, refreshed first when it expires within ``refresh_margin``."""
        with self._lock:
            if self._access is None:
                raise LoginError("login_required", "not logged in: call client.login() first")
            now = time.time()
            if now < self._expires_at - self.refresh_margin:
                return self._access
            if self._refresh is None:
                if now < self._expires_at:
                    return self._access
                raise LoginError("login_required", "your login expired and the identity provider "
                                                   "gave no refresh token; call login() again")
            status, body = self._post(self.endpoints()["token"], {
                "grant_type": "refresh_token", "refresh_token": self._refresh,
                "client_id": self.client_id})
            if status != 200:
                self._refresh = None
                if now < self._expires_at:
                    return self._access
                raise LoginError("login_required", "your login expired; call login() again", status)
            return self._store(body, now)
