"""Authenticators as a plugin kind: loading by name, order, and the 'not mine' contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from lomas_core.config import Config
from lomas_core.errors import ConfigError, PluginError
from lomas_core.plugins import installed_plugins, load_plugins
from lomas_core.testing.harness import LomasHarness, write_plugin_distribution

#: A third-party authenticator: claims credentials starting with "demo:" and maps them to a user.
DEMO = '''
from lomas_core.api import Authenticator, Identity, reject


class Demo(Authenticator):
    def authenticate(self, credential, store):
        if not credential.startswith("demo:"):
            return None
        name = credential[5:]
        if name == "blocked":
            raise reject("demo_blocked", "demo says no")
        return Identity(user=store.get_user(name), is_admin=False, authenticator="demo")
'''


def test_default_is_token_and_a_list_of_names_is_accepted() -> None:
    assert list(Config().authenticators) == ["token"]
    config = Config.model_validate({"authenticators": ["oidc", "token"]})
    assert list(config.authenticators) == ["oidc", "token"]
    config = Config.model_validate({"authenticators": [{"oidc": {"issuer": "x"}}, "token"]})
    assert config.authenticators == {"oidc": {"issuer": "x"}, "token": {}}
    with pytest.raises(ValueError):
        Config.model_validate({"authenticators": []})


def test_unknown_authenticator_stops_start_up_listing_what_is_installed() -> None:
    config = Config.model_validate({"authenticators": ["saml"], "adapters": {}})
    with pytest.raises(PluginError, match=r"authenticator 'saml' is not available; installed: .*token"):
        load_plugins(config, with_store=False)


def test_token_takes_no_options() -> None:
    config = Config.model_validate({"authenticators": {"token": {"x": 1}}, "adapters": {}})
    with pytest.raises(ConfigError, match=r"authenticators\.token: x: Extra inputs are not permitted"):
        load_plugins(config, with_store=False)


def test_installed_authenticators_are_listed() -> None:
    config = Config()
    found = {(p.kind, p.name): p.enabled for p in installed_plugins(config)}
    assert found[("authenticator", "token")] is True


def test_third_party_authenticator_tried_in_order(tmp_path: Path) -> None:
    plugins = write_plugin_distribution(
        tmp_path / "site", "lomas-authenticator-demo",
        {"lomas.authenticators": {"demo": "lomas_auth_demo:Demo"}}, {"lomas_auth_demo.py": DEMO})
    h = LomasHarness(tmp_path, plugin_paths=[plugins], authenticators=["demo", "token"])
    token = h.add_user("alice")
    try:
        with h.client() as c:
            def get(credential: str) -> tuple[int, dict]:
                r = c.get("/v1/datasets", headers={"Authorization": f"Bearer {credential}"})
                return r.status_code, r.json()
            assert get("demo:alice")[0] == 200
            assert get(token)[0] == 200  # not the demo's: the token authenticator's
            status, body = get("demo:blocked")
            assert status == 401 and body["error"]["details"]["reason"] == "demo_blocked"
            status, body = get("neither")
            assert status == 401 and body["error"]["details"]["reason"] == "unknown_token"
    finally:
        h.close()
