"""Fetching the provider's documents: what a misbehaving or hostile provider cannot make lomas do."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from lomas_authenticator_oidc.keys import KeySet
from lomas_authenticator_oidc.options import parse_options
from lomas_authenticator_oidc.testing import LoopbackProvider

from lomas_core.errors import IdentityProviderUnavailable


class Documents:
    """A loopback server answering GETs from ``routes``: path -> (status, body, headers)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        docs = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                status, body, headers = docs.routes.get(self.path, (404, b"{}", {}))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, path: str, body: Any, status: int = 200, **headers: str) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.routes[path] = (status, raw, headers)

    def discovery(self, jwks_uri: str | None = None, issuer: str | None = None) -> None:
        self.serve("/.well-known/openid-configuration",
                   {"issuer": issuer or self.url, "jwks_uri": jwks_uri or f"{self.url}/jwks"})


@pytest.fixture
def docs() -> Iterator[Documents]:
    d = Documents()
    yield d
    d.server.shutdown()
    d.server.server_close()


def _keys(docs: Documents, **options: Any) -> KeySet:
    return KeySet(parse_options({"issuer": docs.url, "audience": "lomas", **options}))


def test_symmetric_keys_in_the_jwks_are_ignored(docs: Documents) -> None:
    idp = LoopbackProvider()
    good = idp.signing_key.jwk()
    docs.discovery()
    docs.serve("/jwks", {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}, good,
                                  {"kty": "RSA", "kid": "broken", "n": "!", "e": "AQAB"}]})
    keys = _keys(docs)
    assert keys.key_for("hmac", "RS256") is None
    assert keys.key_for(good["kid"], "RS256") is not None
    assert keys.key_for(good["kid"], "ES256") is None  # an RSA key never checks an EC signature
    idp._server.server_close()


@pytest.mark.parametrize("setup,words", [
    (lambda d: d.discovery(issuer="https://elsewhere.example.org"), "another issuer"),
    (lambda d: d.discovery(jwks_uri="http://jwks.example.org/keys"), "not https"),
    (lambda d: (d.discovery(), d.serve("/jwks", b"x" * 4096)), "too large"),
    (lambda d: (d.discovery(), d.serve("/jwks", b"<html>", 200)), "not JSON"),
    (lambda d: (d.discovery(), d.serve("/jwks", b"", 302, Location="http://127.0.0.1:9/")),
     "HTTP 302"),
    (lambda d: None, "HTTP 404"),
])
def test_bad_provider_answers_are_503(docs: Documents, setup: Any, words: str) -> None:
    setup(docs)
    with pytest.raises(IdentityProviderUnavailable, match=words):
        _keys(docs, max_document_bytes=1024).key_for("k", "RS256")


def test_failed_fetches_are_rate_limited_too(docs: Documents) -> None:
    keys = _keys(docs, jwks_min_refresh_seconds=3600)
    with pytest.raises(IdentityProviderUnavailable):
        keys.key_for("k", "RS256")
    docs.discovery()
    docs.serve("/jwks", {"keys": []})
    with pytest.raises(IdentityProviderUnavailable):  # no new attempt within the hour
        keys.key_for("k", "RS256")
    assert keys.fetches == 0
