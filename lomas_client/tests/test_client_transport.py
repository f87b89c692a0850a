"""Retries, idempotency keys, timeouts and error mapping against a scripted loopback server."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest
from lomas_client.errors import error_from_response

import lomas_client as lc

if TYPE_CHECKING:
    from conftest import Scripted

OK_QUERY = (200, {"query_id": "q1", "engine": "smartnoise_sql", "dummy": False,
                  "result": {"type": "value", "value": 42}, "epsilon": 0.5, "delta": 0.0,
                  "remaining": {"epsilon": 9.5, "delta": 1e-5}})


def _client(url: str, **kw: object) -> lc.Client:
    return lc.Client(url=url, token="tok", dataset_name="ds", backoff=0.01, **kw)  # type: ignore[arg-type]


def _err(code: str, status: int) -> tuple[int, dict[str, object]]:
    return status, {"error": {"code": code, "message": f"because {code}"}}


@pytest.mark.parametrize(("code", "status", "cls"), [
    ("invalid_request", 400, lc.InvalidQueryError),
    ("invalid_query", 422, lc.InvalidQueryError),
    ("unauthenticated", 401, lc.AuthenticationError),
    ("access_denied", 403, lc.AccessDeniedError),
    ("insufficient_budget", 403, lc.BudgetExceededError),
    ("not_found", 404, lc.NotFoundError),
    ("conflict", 409, lc.ConflictError),
    ("idempotency_key_reused", 409, lc.IdempotencyKeyReusedError),
    ("query_in_progress", 409, lc.QueryInProgressError),
    ("payload_too_large", 413, lc.PayloadTooLargeError),
    ("query_failed", 422, lc.QueryFailedError),
    ("charged_failure", 422, lc.ChargedFailureError),
    ("too_many_queries", 429, lc.TooManyQueriesError),
    ("dataset_unavailable", 503, lc.DatasetUnavailableError),
    ("store_unavailable", 503, lc.DatasetUnavailableError),
    ("query_timeout", 504, lc.QueryFailedError),
    ("internal_error", 500, lc.ServerError),
])
def test_every_code_has_its_exception(code: str, status: int, cls: type) -> None:
    err = error_from_response(status, {"error": {"code": code, "message": "why"}})
    assert isinstance(err, cls) and isinstance(err, lc.LomasClientError)
    assert (err.code, err.message, err.status) == (code, "why", status)


def test_bodies_without_a_code_map_by_status() -> None:
    assert isinstance(error_from_response(404, {"detail": "Not Found"}), lc.NotFoundError)
    assert isinstance(error_from_response(502, "<html>bad gateway</html>"), lc.ServerError)
    assert error_from_response(418, None).code == "http_error"


def test_query_sends_bearer_token_and_one_key_across_retries(scripted: Scripted) -> None:
    scripted.push(_err("store_unavailable", 503), (502, "<html>proxy</html>"),
                  _err("query_in_progress", 409), OK_QUERY)
    with _client(scripted.url) as client:
        res = client.query("smartnoise_sql", {"sql": "SELECT 1"})
    assert res.result == 42 and res.query_id == "q1" and res.remaining == {"epsilon": 9.5,
                                                                            "delta": 1e-5}
    keys = {r["headers"].get("Idempotency-Key") for r in scripted.requests}
    assert len(scripted.requests) == 4 and len(keys) == 1 and None not in keys
    assert all(r["headers"]["Authorization"] == "Bearer tok" for r in scripted.requests)
    assert scripted.requests[0]["json"] == {"engine": "smartnoise_sql", "query": {"sql": "SELECT 1"},
                                            "dummy": None}


def test_each_call_gets_a_fresh_key(scripted: Scripted) -> None:
    scripted.push(OK_QUERY, OK_QUERY)
    with _client(scripted.url) as client:
        client.query("x", {})
        client.query("x", {})
    assert scripted.requests[0]["headers"]["Idempotency-Key"] != \
        scripted.requests[1]["headers"]["Idempotency-Key"]


def test_dropped_connection_is_retried_with_the_same_key(scripted: Scripted) -> None:
    scripted.push(scripted.DROP, OK_QUERY)
    with _client(scripted.url) as client:
        assert client.query("x", {}).result == 42
    assert len(scripted.requests) == 2
    assert len({r["headers"]["Idempotency-Key"] for r in scripted.requests}) == 1


@pytest.mark.parametrize("reply", [_err("invalid_query", 422), _err("query_failed", 422),
                                   _err("query_timeout", 504), _err("insufficient_budget", 403),
                                   _err("too_many_queries", 429)])
def test_final_answers_are_not_retried(scripted: Scripted, reply: tuple[int, dict]) -> None:
    scripted.push(reply, OK_QUERY)
    with _client(scripted.url) as client, pytest.raises(lc.LomasClientError) as info:
        client.query("x", {})
    assert info.value.code == reply[1]["error"]["code"]
    assert info.value.message == f"because {info.value.code}"
    assert len(scripted.requests) == 1


def test_retries_are_bounded(scripted: Scripted) -> None:
    scripted.push(*[_err("dataset_unavailable", 503)] * 10)
    with _client(scripted.url, max_retries=2) as client, \
            pytest.raises(lc.DatasetUnavailableError):
        client.get_dataset_metadata()
    assert len(scripted.requests) == 3


def test_unreachable_server_raises_connection_failed() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave the block: nothing listens there
    with _client(f"http://127.0.0.1:{port}", max_retries=1) as client, \
            pytest.raises(lc.ConnectionFailedError) as info:
        client.list_datasets()
    assert info.value.status is None and "2 attempt" in info.value.message


def test_read_timeout_is_configurable_and_retried(scripted: Scripted) -> None:
    # A listening socket that never answers: the read timeout fires on every attempt.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        with _client(f"http://127.0.0.1:{port}", read_timeout=0.2, max_retries=1) as client, \
                pytest.raises(lc.ConnectionFailedError, match="ReadTimeout"):
            client.get_remaining_budget()


def test_non_json_success_is_a_server_error(scripted: Scripted) -> None:
    scripted.push((200, "<html>captive portal</html>"))
    with _client(scripted.url) as client, pytest.raises(lc.ServerError):
        client.list_datasets()


def test_configuration_from_environment(scripted: Scripted, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOMAS_URL", scripted.url)
    monkeypatch.setenv("LOMAS_TOKEN", "envtok")
    monkeypatch.setenv("LOMAS_DATASET", "penguins")
    scripted.push((200, {"initial": {"epsilon": 10, "delta": 1e-5},
                         "spent": {"epsilon": 1.5, "delta": 0},
                         "remaining": {"epsilon": 8.5, "delta": 1e-5}}))
    with lc.Client() as client:
        assert client.get_remaining_budget() == {"epsilon": 8.5, "delta": 1e-5}
    assert scripted.requests[0]["path"] == "/v1/datasets/penguins/budget"
    assert scripted.requests[0]["headers"]["Authorization"] == "Bearer envtok"


def test_missing_url_or_dataset_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("LOMAS_URL", "LOMAS_TOKEN", "LOMAS_DATASET"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValueError, match="LOMAS_URL"):
        lc.Client()
    with lc.Client(url="http://127.0.0.1:9") as client, pytest.raises(ValueError,
                                                                      match="LOMAS_DATASET"):
        client.get_dataset_metadata()


def test_charged_failure_is_final_and_not_retried(scripted: Scripted) -> None:
    scripted.push(_err("charged_failure", 422))
    with _client(scripted.url) as client, pytest.raises(lc.QueryFailedError) as info:
        client.query("smartnoise_sql", {"sql": "SELECT 1"})
    assert isinstance(info.value, lc.ChargedFailureError) and len(scripted.requests) == 1


def _record(i: int) -> dict[str, object]:
    return {"id": f"q{i}", "engine": "opendp", "status": "success", "epsilon": 0.1, "delta": 0.0,
            "result": {"type": "value", "value": i}}


def test_previous_queries_follow_the_cursor(scripted: Scripted) -> None:
    scripted.push((200, {"queries": [_record(0), _record(1)], "next_cursor": "c1"}),
                  (200, {"queries": [_record(2)], "next_cursor": None}))
    with _client(scripted.url) as client:
        past = client.get_previous_queries(status="success", engine="opendp", page_size=2,
                                           since="2026-01-01")
    assert [p["id"] for p in past] == ["q0", "q1", "q2"] and past[2]["result"] == 2
    first, second = (r["path"] for r in scripted.requests)
    assert first.startswith("/v1/datasets/ds/queries?") and "cursor" not in first
    assert "status=success" in first and "engine=opendp" in first and "limit=2" in first
    assert "since=2026-01-01" in first and "cursor=c1" in second


def test_previous_queries_limit_stops_early(scripted: Scripted) -> None:
    scripted.push((200, {"queries": [_record(0), _record(1)], "next_cursor": "c1"}))
    with _client(scripted.url) as client:
        assert [p["id"] for p in client.get_previous_queries(limit=1)] == ["q0"]
    assert len(scripted.requests) == 1
