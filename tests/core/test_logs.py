"""Structured logs: request ids, one JSON line per query with the documented fields only."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from lomas_core.logs import JsonFormatter, configure_logging
from lomas_core.testing.harness import LomasHarness

META = {"max_ids": 1, "rows": 30, "columns": {"x": {"type": "int", "lower": 0, "upper": 9}}}


def test_query_lines_are_json_with_ids_and_nothing_private(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    h = LomasHarness(tmp_path, engines={"toy_count": {}, "toy_faulty": {}})
    h.add_dataset("ds", pd.DataFrame({"x": list(range(10)) * 3}), META)
    token = h.add_user("alice-name", grant={"ds": (0.15, 0.0)})
    caplog.set_level(logging.INFO, logger="lomas.queries")
    try:
        with h.client(token) as c:
            r = c.post("/v1/datasets/ds/query", headers={"X-Request-ID": "req-42"},
                       json={"engine": "toy_count", "query": {"epsilon": 0.1}})
            assert r.headers["x-request-id"] == "req-42"
            r = c.post("/v1/datasets/ds/query", headers={"X-Request-ID": "bad id\n{}"},
                       json={"engine": "toy_faulty", "query": {"epsilon": 0.1, "action": "raise"}})
            generated = r.headers["x-request-id"]
            assert len(generated) == 32 and generated != "bad id\n{}"
            user_id = h.store.get_user("alice-name").id
    finally:
        h.close()
    lines = [json.loads(JsonFormatter().format(rec)) for rec in caplog.records
             if rec.name == "lomas.queries"]
    assert [x["outcome"] for x in lines] == ["success", "refused"]
    ok, refused = lines
    assert ok["request_id"] == "req-42" and ok["user_id"] == user_id
    assert ok["dataset"] == "ds" and ok["engine"] == "toy_count"
    assert ok["epsilon"] == 0.1 and ok["delta"] == 0.0 and ok["duration_ms"] >= 0
    assert ok["level"] == "info" and ok["logger"] == "lomas.queries"
    assert refused == {**refused, "request_id": generated, "engine": "toy_faulty",
                       "code": "insufficient_budget"}
    text = "\n".join(json.dumps(x) for x in lines)
    for private in ("alice-name", token, '"value"', "private-value-31337", '"action"'):
        assert private not in text


def test_exceptions_are_logged_by_type_only() -> None:
    try:
        raise ValueError("row 7 has salary 123456")
    except ValueError:
        import sys

        record = logging.LogRecord("lomas.query", logging.ERROR, __file__, 1, "failed %s",
                                   ("q1",), sys.exc_info())
    out = json.loads(JsonFormatter().format(record))
    assert out["message"] == "failed q1" and out["exception"] == "ValueError"
    assert "123456" not in json.dumps(out)


def test_configure_json_formats_the_lomas_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    logger = logging.getLogger("lomas")
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "propagate", True)
    monkeypatch.setattr(logger, "level", logging.NOTSET)
    configure_logging("text")
    assert logger.handlers == []
    configure_logging("json")
    assert isinstance(logger.handlers[0].formatter, JsonFormatter)
