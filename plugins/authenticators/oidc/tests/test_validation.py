"""Access tokens checked against a real provider on loopback: what passes, what is refused."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lomas_authenticator_oidc.testing import LoopbackProvider

from lomas_core.testing.harness import LomasHarness


def _call(h: LomasHarness, token: str) -> tuple[int, dict]:
    with h.client(token) as c:
        r = c.get("/v1/datasets")
    return r.status_code, r.json()


def _refused(h: LomasHarness, token: str, reason: str) -> str:
    status, body = _call(h, token)
    assert status == 401, body
    assert body["error"]["code"] == "unauthenticated"
    assert body["error"]["details"]["reason"] == reason, body
    return str(body["error"]["message"])


def test_valid_token_is_accepted(h: LomasHarness, idp: LoopbackProvider) -> None:
    h.add_user("alice")
    assert _call(h, idp.mint("alice")) == (200, {"datasets": []})


def test_ec_keys_work(tmp_path: Path,
        oidc_harness: Callable[..., Any]) -> None:
    with LoopbackProvider(key_kind="EC") as idp:
        h = oidc_harness(tmp_path, idp)
        h.add_user("alice")
        assert _call(h, idp.mint("alice"))[0] == 200
        h.close()


@pytest.mark.parametrize("claims,reason,words", [
    ({"exp": int(time.time()) - 3600}, "token_expired", "expired"),
    ({"nbf": int(time.time()) + 3600}, "token_not_yet_valid", "not valid yet"),
    ({"aud": "another-api"}, "wrong_audience", "audience"),
    ({"iss": "https://evil.example.org"}, "wrong_issuer", "does not trust"),
])
def test_bad_claims_are_401(h: LomasHarness, idp: LoopbackProvider, claims: dict, reason: str,
                            words: str) -> None:
    h.add_user("alice")
    assert words in _refused(h, idp.mint("alice", **claims), reason)


def test_small_clock_skew_is_tolerated(h: LomasHarness, idp: LoopbackProvider) -> None:
    h.add_user("alice")
    assert _call(h, idp.mint("alice", exp=int(time.time()) - 5))[0] == 200  # default skew 30s


def test_unknown_key_is_401(h: LomasHarness, idp: LoopbackProvider) -> None:
    h.add_user("alice")
    assert _call(h, idp.mint("alice"))[0] == 200
    stranger = LoopbackProvider()  # never started: its key is published nowhere
    token = stranger.mint("alice", iss=idp.issuer)
    stranger._server.server_close()
    _refused(h, token, "unknown_key")


def test_alg_none_is_401(h: LomasHarness, idp: LoopbackProvider) -> None:
    h.add_user("alice")
    assert "not accepted" in _refused(h, idp.forge("alice", "none"), "algorithm_not_allowed")


def test_hmac_with_the_public_key_is_401(h: LomasHarness, idp: LoopbackProvider) -> None:
    h.add_user("alice")
    for secret in (idp.public_pem, json.dumps(idp.signing_key.jwk()).encode()):
        _refused(h, idp.forge("alice", "HS256", secret=secret), "algorithm_not_allowed")


def test_tampered_token_is_401(h: LomasHarness, idp: LoopbackProvider) -> None:
    h.add_user("alice")
    h.add_user("admin2", is_admin=True)
    header, payload, signature = idp.mint("alice").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["preferred_username"] = "admin2"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    _refused(h, f"{header}.{forged}.{signature}", "invalid_signature")
    _refused(h, f"{header}.{payload}.{signature[:-4]}AAAA", "invalid_signature")


def test_key_rotation_is_picked_up(h: LomasHarness, idp: LoopbackProvider) -> None:
    h.add_user("alice")
    with h.client() as c:
        def status(token: str) -> int:
            return c.get("/v1/datasets", headers={"Authorization": f"Bearer {token}"}).status_code
        assert status(idp.mint("alice")) == 200
        old = idp.mint("alice")
        idp.rotate("EC")
        assert status(idp.mint("alice")) == 200  # unknown kid: keys refetched once
        assert status(old) == 401  # the old key is no longer published


def test_random_kids_do_not_cause_a_fetch_per_request(tmp_path: Path, idp: LoopbackProvider,
        oidc_harness: Callable[..., Any]) -> None:
    h = oidc_harness(tmp_path, idp, jwks_min_refresh_seconds=3600)
    h.add_user("alice")
    with h.client() as c:
        def status(token: str) -> int:
            return c.get("/v1/datasets", headers={"Authorization": f"Bearer {token}"}).status_code
        assert status(idp.mint("alice")) == 200
        fetches = idp.hits["/jwks"]
        for i in range(20):
            assert status(idp.mint("alice", headers={"kid": f"random-{i}"})) == 401
        assert idp.hits["/jwks"] == fetches
    h.close()


def test_unknown_user_is_401_unless_created_on_first_login(tmp_path: Path,
                                                           idp: LoopbackProvider,
        oidc_harness: Callable[..., Any]) -> None:
    h = oidc_harness(tmp_path / "a", idp)
    assert "ask an administrator" in _refused(h, idp.mint("bob"), "unknown_user")
    h.close()
    h = oidc_harness(tmp_path / "b", idp, create_users=True)
    assert _call(h, idp.mint("bob"))[0] == 200
    bob = h.store.get_user("bob")
    assert not bob.is_admin and h.store.list_grants(user="bob") == []
    h.close()


def test_invalid_user_claim_is_401(h: LomasHarness, idp: LoopbackProvider) -> None:
    _refused(h, idp.mint("x", preferred_username="not a name; drop"), "invalid_user_claim")


def test_admin_role_from_the_store_or_a_claim(tmp_path: Path, idp: LoopbackProvider,
        oidc_harness: Callable[..., Any]) -> None:
    h = oidc_harness(tmp_path / "store", idp)
    h.add_user("alice")
    with h.client(idp.mint("admin")) as c:
        assert c.get("/v1/admin/users").status_code == 200
    with h.client(idp.mint("alice")) as c:
        assert c.get("/v1/admin/users").status_code == 403
    h.close()
    h = oidc_harness(tmp_path / "claim", idp, admin_claim="realm_access.roles",
                     admin_value="lomas-admin")
    h.add_user("alice")
    with h.client(idp.mint("alice", realm_access={"roles": ["lomas-admin"]})) as c:
        assert c.get("/v1/admin/users").status_code == 200
    with h.client(idp.mint("admin")) as c:  # the claim decides, not the store
        assert c.get("/v1/admin/users").status_code == 403
    h.close()


def test_suspended_user_is_403(h: LomasHarness, idp: LoopbackProvider) -> None:
    h.add_user("alice")
    h.store.set_suspended("alice", True)
    with h.client(idp.mint("alice")) as c:
        r = c.get("/v1/datasets")
    assert r.status_code == 403 and r.json()["error"]["code"] == "suspended"


def test_static_tokens_still_work_next_to_oidc(h: LomasHarness) -> None:
    token = h.add_user("robot")
    assert _call(h, token)[0] == 200
    assert _call(h, "lomas_unknown")[0] == 401


def test_provider_down_is_503_not_401(tmp_path: Path,
        oidc_harness: Callable[..., Any]) -> None:
    idp = LoopbackProvider()
    token = idp.mint("alice")
    idp._server.server_close()  # nothing listens on its port any more
    h = oidc_harness(tmp_path, idp)
    h.add_user("alice")
    status, body = _call(h, token)
    assert status == 503 and body["error"]["code"] == "identity_provider_unavailable"
    h.close()
