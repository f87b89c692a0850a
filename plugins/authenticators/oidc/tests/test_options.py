"""Options refuse unsafe settings at start-up with one clear line."""

from __future__ import annotations

import pytest
from lomas_authenticator_oidc.options import parse_options

from lomas_core.errors import ConfigError


@pytest.mark.parametrize("options,words", [
    ({"issuer": "http://idp.example.org", "audience": "lomas"}, "https"),
    ({"issuer": "https://idp.example.org", "audience": "lomas", "algorithms": ["none"]}, "none"),
    ({"issuer": "https://idp.example.org", "audience": "lomas", "algorithms": ["HS256"]}, "HS256"),
    ({"issuer": "https://idp.example.org", "audience": []}, "audience"),
    ({"issuer": "https://idp.example.org", "audience": "a", "admin_claim": "groups"}, "admin_value"),
    ({"issuer": "https://idp.example.org", "audience": "a", "clock_skew_seconds": 3600},
     "clock_skew"),
])
def test_unsafe_options_are_refused(options: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_options(options)


def test_defaults() -> None:
    opts = parse_options({"issuer": "https://idp.example.org/realms/x", "audience": "lomas"})
    assert opts.audience == ["lomas"] and opts.algorithms == ["RS256", "ES256"]
    assert opts.discovery_url == "https://idp.example.org/realms/x/.well-known/openid-configuration"
