"""Token providers: asked before every request, retries included (the device flow itself is tested
end to end against a loopback OpenID provider in plugins/authenticators/oidc/tests)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

import lomas_client as lc

if TYPE_CHECKING:
    from conftest import Scripted


def test_token_provider_is_asked_before_every_request(scripted: Scripted) -> None:
    tokens = iter(["t1", "t2", "t3"])
    scripted.push((503, {"error": {"code": "store_unavailable", "message": "later"}}),
                  (200, {"datasets": []}), (200, {"datasets": []}))
    with lc.Client(url=scripted.url, token_provider=lambda: next(tokens), backoff=0.01) as client:
        assert client.list_datasets() == []
        assert client.list_datasets() == []
    sent = [r["headers"].get("Authorization") for r in scripted.requests]
    assert sent == ["Bearer t1", "Bearer t2", "Bearer t3"]


def test_token_and_provider_exclude_each_other_and_login_needs_an_issuer(
        scripted: Scripted, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="not both"):
        lc.Client(url=scripted.url, token="x", token_provider=lambda: "y")
    monkeypatch.delenv("LOMAS_OIDC_ISSUER", raising=False)
    monkeypatch.delenv("LOMAS_OIDC_CLIENT_ID", raising=False)
    with lc.Client(url=scripted.url) as client, pytest.raises(ValueError, match="issuer"):
        client.login()


def test_session_without_login_asks_for_one() -> None:
    session = lc.OidcSession("https://id.example.org", "lomas-cli")
    with pytest.raises(lc.LoginError, match="login") as info:
        session()
    assert info.value.code == "login_required"
    session.close()
