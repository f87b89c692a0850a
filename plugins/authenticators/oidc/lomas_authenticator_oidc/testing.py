"""A small OpenID provider on loopback, for tests of lomas with single sign-on.

It serves discovery, JWKS, device authorization (RFC 8628) and token endpoints over real HTTP on
127.0.0.1, with RSA and EC keys generated per instance. Tests mint tokens directly
(:meth:`LoopbackProvider.mint`), rotate keys, and approve device codes as the user would.

Example::

    with LoopbackProvider(audience="lomas") as idp:
        options = {"issuer": idp.issuer, "audience": "lomas"}
        token = idp.mint("alice")

Test-only: it signs whatever it is told to and keeps everything in memory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

__all__ = ["DEVICE_GRANT", "LoopbackProvider"]

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _Key:
    def __init__(self, kind: str) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        self.kid = f"{kind.lower()}-{secrets.token_hex(4)}"
        self.alg = "RS256" if kind == "RSA" else "ES256"
        self.private: Any = (rsa.generate_private_key(public_exponent=65537, key_size=2048)
                             if kind == "RSA" else ec.generate_private_key(ec.SECP256R1()))

    def jwk(self) -> dict[str, Any]:
        from jwt.algorithms import ECAlgorithm, RSAAlgorithm

        algo = RSAAlgorithm if self.alg.startswith("RS") else ECAlgorithm
        jwk: dict[str, Any] = json.loads(algo.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def public_pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return bytes(self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


class LoopbackProvider:
    """An OpenID provider on ``127.0.0.1`` (start with ``with`` or :meth:`start`).

    Args:
        audience: the ``aud`` of the access tokens it issues.
        key_kind: ``RSA`` or ``EC``, the kind of the first signing key.
        token_lifetime: seconds an issued access token is valid.
        interval: the device flow's polling interval in seconds (RFC 8628 ``interval``).
    """

    def __init__(self, audience: str = "lomas", *, key_kind: str = "RSA",
                 token_lifetime: int = 300, interval: float = 5.0) -> None:
        self.audience = audience
        self.token_lifetime = token_lifetime
        self.interval = interval
        self.keys: list[_Key] = [_Key(key_kind)]
        self.signing_key = self.keys[0]
        #: Requests served, by path (``/jwks``, ``/token``, ...).
        self.hits: dict[str, int] = {}
        #: Answer the next device-code poll with ``slow_down`` (then behave normally).
        self.slow_down_next = False
        self.refreshes = 0
        self._devices: dict[str, dict[str, Any]] = {}
        self._refresh_tokens: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.issuer = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> LoopbackProvider:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LoopbackProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- keys and tokens ---------------------------------------------------------------------------
    def rotate(self, key_kind: str = "RSA", *, keep_old: bool = False) -> str:
        """Sign with a new key from now on (published at once); returns its ``kid``."""
        key = _Key(key_kind)
        with self._lock:
            self.keys = [*self.keys, key] if keep_old else [key]
            self.signing_key = key
        return key.kid

    @property
    def public_pem(self) -> bytes:
        """The signing key's public key (PEM), e.g. for an algorithm-confusion attempt."""
        return self.signing_key.public_pem()

    def claims(self, user: str, **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        return {"iss": self.issuer, "aud": self.audience, "sub": f"sub-{user}",
                "preferred_username": user, "iat": now, "nbf": now,
                "exp": now + self.token_lifetime, **extra}

    def mint(self, user: str, *, headers: dict[str, Any] | None = None, **claims: Any) -> str:
        """A signed access token for ``user``; keyword arguments override or add claims
        (``exp=...``, ``aud=...``, ``iss=...``, ``groups=[...]``)."""
        import jwt

        key = self.signing_key
        return jwt.encode(self.claims(user, **claims), key.private, algorithm=key.alg,
                          headers={"kid": key.kid, **(headers or {})})

    def forge(self, user: str, alg: str, *, secret: bytes = b"", **claims: Any) -> str:
        """An unsigned (``alg: none``) or HMAC-signed token built by hand, as an attacker would."""
        header = {"alg": alg, "typ": "JWT", "kid": self.signing_key.kid}
        signing_input = (_b64(json.dumps(header).encode()) + "."
                         + _b64(json.dumps(self.claims(user, **claims)).encode()))
        if alg == "none":
            return signing_input + "."
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
        signature = hmac.new(secret, signing_input.encode(), digest).digest()
        return signing_input + "." + _b64(signature)

    # -- device flow ---------------------------------------------------------------------------------
    def approve(self, user_code: str, user: str, **claims: Any) -> None:
        """Approve a pending device code as ``user`` would after logging in (KeyError if unknown)."""
        with self._lock:
            device = next(d for d in self._devices.values() if d["user_code"] == user_code)
            device["claims"] = {"user": user, **claims}

    def expire_device_codes(self) -> None:
        with self._lock:
            for device in self._devices.values():
                device["expires_at"] = 0.0

    def _issue(self, user: str, extra: dict[str, Any]) -> dict[str, Any]:
        refresh = secrets.token_urlsafe(24)
        self._refresh_tokens[refresh] = {"user": user, **extra}
        return {"access_token": self.mint(user, **extra), "token_type": "Bearer",
                "expires_in": self.token_lifetime, "refresh_token": refresh}

    def _token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type")
        with self._lock:
            if grant == DEVICE_GRANT:
                device = self._devices.get(form.get("device_code", ""))
                if device is None:
                    return 400, {"error": "invalid_grant"}
                if time.time() > device["expires_at"]:
                    return 400, {"error": "expired_token"}
                if self.slow_down_next:
                    self.slow_down_next = False
                    return 400, {"error": "slow_down"}
                if device["claims"] is None:
                    return 400, {"error": "authorization_pending"}
                del self._devices[form["device_code"]]
                extra = dict(device["claims"])
                return 200, self._issue(extra.pop("user"), extra)
            if grant == "refresh_token":
                record = self._refresh_tokens.pop(form.get("refresh_token", ""), None)
                if record is None:
                    return 400, {"error": "invalid_grant"}
                self.refreshes += 1
                extra = dict(record)
                return 200, self._issue(extra.pop("user"), extra)
        return 400, {"error": "unsupported_grant_type"}

    def _device_authorization(self, form: dict[str, str]) -> dict[str, Any]:
        device_code = secrets.token_urlsafe(24)
        user_code = "-".join(secrets.token_hex(2).upper() for _ in range(2))
        with self._lock:
            self._devices[device_code] = {"user_code": user_code, "claims": None,
                                          "client_id": form.get("client_id"),
                                          "expires_at": time.time() + 600}
        return {"device_code": device_code, "user_code": user_code,
                "verification_uri": f"{self.issuer}/device",
                "verification_uri_complete": f"{self.issuer}/device?user_code={user_code}",
                "expires_in": 600, "interval": self.interval}

    def _discovery(self) -> dict[str, Any]:
        return {"issuer": self.issuer, "jwks_uri": f"{self.issuer}/jwks",
                "token_endpoint": f"{self.issuer}/token",
                "device_authorization_endpoint": f"{self.issuer}/device_authorization",
                "grant_types_supported": [DEVICE_GRANT, "refresh_token"],
                "id_token_signing_alg_values_supported": ["RS256", "ES256"]}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _count(self) -> str:
                path = self.path.split("?", 1)[0]
                with provider._lock:
                    provider.hits[path] = provider.hits.get(path, 0) + 1
                return path

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                path = self._count()
                if path == "/.well-known/openid-configuration":
                    self._send(200, provider._discovery())
                elif path == "/jwks":
                    with provider._lock:
                        self._send(200, {"keys": [k.jwk() for k in provider.keys]})
                else:
                    self._send(404, {"error": "not_found"})

            def do_POST(self) -> None:  # noqa: N802
                path = self._count()
                length = int(self.headers.get("Content-Length") or 0)
                raw = parse_qs(self.rfile.read(length).decode())
                form = {k: v[0] for k, v in raw.items()}
                if path == "/token":
                    self._send(*provider._token(form))
                elif path == "/device_authorization":
                    self._send(200, provider._device_authorization(form))
                else:
                    self._send(404, {"error": "not_found"})

        return Handler
