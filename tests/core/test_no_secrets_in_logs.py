"""No secret, token or token hash reaches a log line at any level: every logger at DEBUG, a
scenario of authenticated requests (researcher and admin, success and refusals) on both stores,
every captured record scanned."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from admin_testdata import QUERY, STORES, harness_on

from lomas_core.testing.harness import LomasHarness
from lomas_core.tokens import hash_token
from lomas_testsupport.mongo import mongodb_uri  # noqa: F401 - fixture


@pytest.fixture(params=STORES)
def h(request: pytest.FixtureRequest) -> Iterator[LomasHarness]:
    yield from harness_on(request)


class _Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a record that cannot format still gets scanned
            text = f"{record.msg!r} {record.args!r}"
        self.lines.append(f"{record.name} {text} {record.__dict__!r}")


@pytest.fixture
def debug_logs() -> Iterator[_Everything]:
    handler = _Everything()
    root = logging.getLogger()
    names = [None, *logging.root.manager.loggerDict]
    levels = {}
    for name in names:
        logger = logging.getLogger(name)
        levels[name] = logger.level
        logger.setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _every_logger_at_debug() -> None:
    """Loggers created since the fixture ran (pymongo's, the server's) go to DEBUG too."""
    for name in list(logging.root.manager.loggerDict):
        logging.getLogger(name).setLevel(logging.DEBUG)


def test_no_token_hash_or_secret_in_any_log_line(h: LomasHarness,
                                                 debug_logs: _Everything) -> None:
    token = h.add_user("eve", grant={"ds": (1.0, 0.0)})
    _every_logger_at_debug()
    with h.client(token) as c:
        _every_logger_at_debug()
        assert c.post("/v1/datasets/ds/query", json=QUERY).status_code == 200
        assert c.get("/v1/datasets/ds/budget").status_code == 200
        assert c.get("/v1/admin/users").status_code == 403
    with h.client("lomas_not-a-real-token") as c:
        assert c.get("/v1/datasets").status_code == 401
    with h.client(h.admin_token) as c:
        issued = c.post("/v1/admin/users/eve/tokens").json()["token"]
        assert c.get("/v1/admin/users/eve/tokens").status_code == 200
        assert c.post("/v1/admin/users/eve/suspend").status_code == 200
    with h.client(issued) as c:
        assert c.get("/v1/datasets").status_code == 403
    h.store.list_tokens("eve")  # the last-used writes, done off the request path, are flushed
    assert debug_logs.lines, "nothing was captured: the scan would prove nothing"
    text = "\n".join(debug_logs.lines)
    for value in (token, issued, h.admin_token, "lomas_not-a-real-token"):
        assert value not in text
        assert hash_token(value) not in text, "a token hash reached a log line"
