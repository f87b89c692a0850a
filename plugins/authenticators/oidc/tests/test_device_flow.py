"""The researcher's login end to end: lomas_client's device flow against the loopback provider and
a real lomas server process that trusts it."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from lomas_authenticator_oidc.testing import LoopbackProvider

from lomas_core.testing.harness import LomasHarness

lc = pytest.importorskip("lomas_client")

META = {"max_ids": 1, "rows": 20, "columns": {"x": {"type": "int", "lower": 0, "upper": 9}}}
FRAME = pd.DataFrame({"x": [i % 10 for i in range(20)]})


def _approver(idp: LoopbackProvider, user: str, shown: list[str]) -> Callable[[str], None]:
    """An ``out`` for login(): records the instructions and approves the code as ``user``."""
    def out(line: str) -> None:
        shown.append(line)
        code = re.search(r"enter the code (\S+)", line)
        assert code is not None, line
        idp.approve(code.group(1), user)
    return out


def test_device_flow_end_to_end(tmp_path: Path, idp: LoopbackProvider,
                                oidc_harness: Callable[..., Any]) -> None:
    h = oidc_harness(tmp_path, idp)
    h.add_dataset("ds", FRAME, META)
    h.add_user("alice", grant={"ds": (1.0, 0.0)})
    shown: list[str] = []
    with h.serve() as url:
        client = lc.Client(url=url, dataset_name="ds")
        with pytest.raises(lc.AuthenticationError):
            client.get_remaining_budget()
        session = client.login(idp.issuer, "lomas-cli", out=_approver(idp, "alice", shown),
                               refresh_margin=0)
        assert shown and f"{idp.issuer}/device" in shown[0]
        assert client.get_remaining_budget()["epsilon"] == 1.0
        assert client.query("toy_count", {"epsilon": 0.25})  # a real, charged query
        assert client.get_remaining_budget()["epsilon"] == 0.75
        # Tokens close to expiry are refreshed before the request goes out.
        session.refresh_margin = 10 * idp.token_lifetime
        before = idp.refreshes
        assert client.get_total_spent_budget()["epsilon"] == 0.25
        assert client.list_datasets()
        assert idp.refreshes == before + 2
        # The provider rotates its key and the server learns it: the client's next request is
        # refused (401 unknown_key), the session refreshes once and the request goes through
        # with a token signed by the new key.
        session.refresh_margin = 0
        idp.rotate("EC")
        fresh = {"Authorization": f"Bearer {idp.mint('alice')}"}
        assert httpx.get(f"{url}/v1/datasets", headers=fresh).status_code == 200  # keys refetched
        before = idp.refreshes
        assert client.get_remaining_budget()["epsilon"] == 0.75
        assert idp.refreshes == before + 1
        client.close()


def test_slow_down_and_pending_are_waited_out(idp: LoopbackProvider) -> None:
    session = lc.OidcSession(idp.issuer, "lomas-cli", slow_down_step=0.01)
    code = session.start()
    assert code.interval == idp.interval
    idp.slow_down_next = True
    polls: list[float] = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 3:  # after a slow_down and a pending answer
            idp.approve(code.user_code, "alice")

    session.wait(code, sleep=sleep)
    assert polls[0] == idp.interval and polls[1] == pytest.approx(idp.interval + 0.01)
    assert isinstance(session(), str)
    session.close()


def test_expired_code_is_a_clear_error(idp: LoopbackProvider) -> None:
    session = lc.OidcSession(idp.issuer, "lomas-cli")
    code = session.start()
    idp.expire_device_codes()
    with pytest.raises(lc.LoginError, match="expired") as info:
        session.wait(code, sleep=lambda s: None)
    assert info.value.code == "login_expired"
    with pytest.raises(lc.LoginError, match="login"):
        session()  # never logged in
    session.close()


def test_token_provider_callable(h: LomasHarness, idp: LoopbackProvider) -> None:
    h.add_user("alice")
    calls: list[int] = []

    def provider() -> str:
        calls.append(1)
        return idp.mint("alice")

    with h.serve() as url:
        client = lc.Client(url=url, token_provider=provider)
        assert client.list_datasets() == [] and client.list_datasets() == []
        client.close()
    assert len(calls) == 2
    with pytest.raises(ValueError, match="not both"):
        lc.Client(url="http://127.0.0.1:1", token="x", token_provider=provider)
