"""The provider's signing keys: discovery and JWKS fetched safely, cached, refreshed on demand.

Keys are fetched on first use, refetched after ``jwks_cache_seconds``, and refetched early when a
token names an unknown ``kid`` (a rotation), but never more than once per
``jwks_min_refresh_seconds``: random ``kid`` values cost an attacker a 401, not a fetch per request.
A failed fetch keeps the keys already known; with none known, tokens are refused with 503.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from lomas_authenticator_oidc.options import OidcOptions, is_loopback_url
from lomas_core.api import IdentityProviderUnavailable

__all__ = ["KeySet", "SigningKey", "fetch_json"]

#: Key type (and curve) each algorithm needs.
_KTY = {"RS": ("RSA", None), "PS": ("RSA", None), "ES256": ("EC", "P-256"),
        "ES384": ("EC", "P-384"), "ES512": ("EC", "P-521"), "EdDSA": ("OKP", None)}


@dataclass(frozen=True)
class SigningKey:
    """One public key of the provider's JWKS."""

    kid: str | None
    kty: str
    crv: str | None
    alg: str | None
    key: Any  # a cryptography public key object

    def fits(self, alg: str) -> bool:
        """Whether a token signed with ``alg`` may be checked with this key."""
        if self.alg is not None and self.alg != alg:
            return False
        kty, crv = _KTY.get(alg, _KTY.get(alg[:2], ("?", None)))
        return self.kty == kty and (crv is None or self.crv == crv)


def fetch_json(url: str, options: OidcOptions) -> dict[str, Any]:
    """GET a JSON document from the provider: TLS (plain HTTP only on loopback), no redirects,
    timeouts, a size cap. IdentityProviderUnavailable (no URL, no body) on any failure."""
    import httpx

    if not url.startswith("https://") and not (url.startswith("http://") and is_loopback_url(url)):
        raise IdentityProviderUnavailable("the identity provider published a key URL that is not "
                                          "https; an administrator must check its configuration")
    timeout = httpx.Timeout(options.http_timeout_seconds)
    try:
        with httpx.Client(timeout=timeout, verify=options.ca_bundle or True,
                          follow_redirects=False, trust_env=False) as http, \
                http.stream("GET", url, headers={"Accept": "application/json"}) as response:
            if response.status_code != 200:
                raise IdentityProviderUnavailable(
                    f"the identity provider answered HTTP {response.status_code}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body.extend(chunk)
                if len(body) > options.max_document_bytes:
                    raise IdentityProviderUnavailable("the identity provider's document is too large")
    except httpx.HTTPError as exc:
        raise IdentityProviderUnavailable(
            f"the identity provider cannot be reached ({type(exc).__name__})") from None
    try:
        document = json.loads(bytes(body))
    except ValueError:
        raise IdentityProviderUnavailable("the identity provider's answer is not JSON") from None
    if not isinstance(document, dict):
        raise IdentityProviderUnavailable("the identity provider's answer is not a JSON object")
    return document


def _parse_jwks(document: dict[str, Any]) -> list[SigningKey]:
    from jwt import PyJWK
    from jwt.exceptions import InvalidKeyError, PyJWKError

    keys: list[SigningKey] = []
    listed = document.get("keys")
    for raw in listed if isinstance(listed, list) else []:
        if not isinstance(raw, dict) or raw.get("kty") not in ("RSA", "EC", "OKP"):
            continue  # symmetric ("oct") keys are never used: they would make HMAC possible
        if raw.get("use") not in (None, "sig"):
            continue
        try:
            key = PyJWK(raw).key
        except (PyJWKError, InvalidKeyError, ValueError, TypeError):
            continue  # a key this library cannot use; the others still work
        kid = raw.get("kid")
        keys.append(SigningKey(kid=kid if isinstance(kid, str) else None, kty=raw["kty"],
                               crv=raw.get("crv"), alg=raw.get("alg"), key=key))
    return keys


class KeySet:
    """The issuer's keys, shared by every request of one server process (thread-safe)."""

    def __init__(self, options: OidcOptions, clock: Any = time.monotonic) -> None:
        self.options = options
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: list[SigningKey] = []
        self._jwks_uri: str | None = None
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        #: JWKS fetches so far (for tests and metrics).
        self.fetches = 0

    def key_for(self, kid: str | None, alg: str) -> SigningKey | None:
        """The key that signed a token with header ``kid``/``alg``, or None when none is known
        (after a refresh, when one is allowed now)."""
        now = self._clock()
        with self._lock:
            expired = self._fetched_at is None or now - self._fetched_at >= self.options.jwks_cache_seconds
            key = None if expired else self._find(kid, alg)
            if key is None and self._may_refresh(now):
                self._refresh(now)
                key = self._find(kid, alg)
            elif key is None:
                key = self._find(kid, alg)  # expired but rate-limited: use what we have
            if key is None and not self._keys:
                raise IdentityProviderUnavailable(
                    "the identity provider's signing keys are not available; try again later")
            return key

    def _may_refresh(self, now: float) -> bool:
        return (self._attempted_at is None
                or now - self._attempted_at >= self.options.jwks_min_refresh_seconds)

    def _find(self, kid: str | None, alg: str) -> SigningKey | None:
        fitting = [k for k in self._keys if k.fits(alg)]
        if kid is None:
            return fitting[0] if len(fitting) == 1 else None
        return next((k for k in fitting if k.kid == kid), None)

    def _refresh(self, now: float) -> None:
        self._attempted_at = now
        try:
            if self._jwks_uri is None:
                discovery = fetch_json(self.options.discovery_url, self.options)
                if discovery.get("issuer") != self.options.issuer:
                    raise IdentityProviderUnavailable(
                        "the identity provider's discovery document names another issuer")
                uri = discovery.get("jwks_uri")
                if not isinstance(uri, str):
                    raise IdentityProviderUnavailable("the discovery document has no jwks_uri")
                self._jwks_uri = uri
            self.fetches += 1
            keys = _parse_jwks(fetch_json(self._jwks_uri, self.options))
        except IdentityProviderUnavailable:
            self._jwks_uri = None  # read discovery again next time (the provider may have moved it)
            if self._keys:
                return  # keep serving the keys we have
            raise
        self._keys = keys
        self._fetched_at = now
