"""The OpenAPI document tells the truth: every error case of docs/api.md that a route returns is
documented on that route with its real status, and the status table of docs/api.md is the code's."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from lomas_core.server.openapi import ROUTE_ERRORS, status_of
from lomas_core.testing.harness import LomasHarness

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
META = {"max_ids": 1, "rows": 20, "columns": {"x": {"type": "int", "lower": 0, "upper": 9}}}
FRAME = pd.DataFrame({"x": [i % 10 for i in range(20)]})
QUERY = {"engine": "toy_count", "query": {"epsilon": 0.5}}


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory):
    harness = LomasHarness(tmp_path_factory.mktemp("contract"), engines={"toy_count": {}},
                           limits={"max_body_bytes": 4096})
    harness.add_dataset("ds", FRAME, META)
    harness.add_dataset("other", FRAME, META)
    harness.researcher = harness.add_user("alice", grant={"ds": (1.0, 0.0)})  # type: ignore[attr-defined]
    yield harness
    harness.close()


@pytest.fixture(scope="module")
def spec(h: LomasHarness) -> dict[str, Any]:
    with h.client() as c:
        return c.get("/openapi.json").json()


def _docs_table() -> dict[str, int]:
    rows = re.findall(r"^\| `(\w+)` \| (\d{3}) \|", DOCS.read_text(), flags=re.M)
    assert rows, "docs/api.md lost its error table"
    return {code: int(status) for code, status in rows}


def test_docs_error_table_matches_the_code() -> None:
    for code, status in _docs_table().items():
        assert status_of(code) == status, code


def test_every_route_is_described_and_no_default_422(h: LomasHarness, spec: dict[str, Any]) -> None:
    keys = {f"{m.upper()} {p}" for p, item in spec["paths"].items() for m in item}
    assert keys == set(ROUTE_ERRORS), keys ^ set(ROUTE_ERRORS)
    assert "HTTPValidationError" not in str(spec)
    for path, item in spec["paths"].items():
        for method, op in item.items():
            ok = op["responses"].get("200") or op["responses"].get("201")
            assert ok and ok["content"]["application/json"]["schema"] != {}, (method, path)
            assert ok["content"]["application/json"]["schema"].get("type") != "object" or \
                ok["content"]["application/json"]["schema"].get("additionalProperties"), path


def test_engine_payloads_are_discriminated_by_engine(spec: dict[str, Any]) -> None:
    for suffix in ("cost", "query"):
        body = spec["paths"][f"/v1/datasets/{{name}}/{suffix}"]["post"]["requestBody"]
        schema = body["content"]["application/json"]["schema"]
        assert schema["discriminator"]["propertyName"] == "engine"
        assert set(schema["discriminator"]["mapping"]) == {"toy_count"}
    components = spec["components"]["schemas"]
    assert "epsilon" in components["_ToyCountQuery"]["properties"]


def _cases(h: LomasHarness, spec: dict[str, Any]) -> list[tuple[str, str, str | None, Any, str]]:
    """(method, path, token, body, expected error code)."""
    researcher = h.researcher  # type: ignore[attr-defined]
    admin = h.admin_token
    cases: list[tuple[str, str, str | None, Any, str]] = []
    for key in ROUTE_ERRORS:
        method, template = key.split(" ", 1)
        if template.startswith("/health"):  # no auth; failure modes are tested elsewhere
            continue
        path = (template.replace("{name}", "ds").replace("{user}", "alice")
                .replace("{dataset}", "ds").replace("{token_id}", "nope"))
        cases.append((method, path, None, None, "unauthenticated"))
        if template.startswith("/v1/admin"):
            cases.append((method, path, researcher, None, "access_denied"))
            if "{user}" in template or "{name}" in template:
                missing = template.replace("{user}", "ghost").replace("{name}", "ghost") \
                    .replace("{dataset}", "ds").replace("{token_id}", "nope")
                body = {"epsilon": 1.0} if method == "PUT" else None
                cases.append((method, missing, admin, body, "not_found"))
        else:
            if "{name}" in template:
                body = ({"rows": 5} if template.endswith("dummy") else QUERY) \
                    if method == "POST" else None
                cases.append((method, path.replace("/ds/", "/other/"), researcher, body,
                              "access_denied"))
        if "requestBody" in spec["paths"][template][method.lower()]:
            token = admin if template.startswith("/v1/admin") else researcher
            cases.append((method, path, token, b"{not json", "invalid_request"))
            cases.append((method, path, token, b"[" * 10 + b" " * 5000, "payload_too_large"))
    for suffix in ("cost", "query"):
        cases.append(("POST", f"/v1/datasets/ds/{suffix}", researcher,
                      {"engine": "toy_count", "query": {"epsilon": "many"}}, "invalid_query"))
    cases.append(("POST", "/v1/datasets/ds/query", researcher,
                  {"engine": "toy_count", "query": {"epsilon": 50.0}}, "insufficient_budget"))
    cases.append(("POST", "/v1/admin/users", admin, {"name": "alice"}, "conflict"))
    cases.append(("POST", "/v1/admin/datasets", admin,
                  {"name": "ds", "adapter": "local", "options": {"path": str(h.data_dir / "ds.parquet")},
                   "metadata": META}, "conflict"))
    return cases


def test_error_cases_are_documented_on_their_route(h: LomasHarness, spec: dict[str, Any]) -> None:
    table = _docs_table()
    templates = [(k.split(" ", 1)[0], k.split(" ", 1)[1]) for k in ROUTE_ERRORS]
    seen = 0
    with h.client() as c:
        for method, path, token, body, expected in _cases(h, spec):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            kwargs: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
            if isinstance(body, bytes):
                headers["Content-Type"] = "application/json"
            r = c.request(method, path, headers=headers, **kwargs)
            assert r.status_code >= 400, (method, path, r.status_code, r.text)
            code = r.json()["error"]["code"]
            assert code == expected, (method, path, r.text)
            assert r.status_code == table[code], (method, path, code)
            template = next(t for m, t in templates if m == method and re.fullmatch(
                re.sub(r"\{\w+\}", "[^/]+", t), path))
            documented = spec["paths"][template][method.lower()]["responses"]
            assert str(r.status_code) in documented, (method, template, r.status_code)
            examples = documented[str(r.status_code)]["content"]["application/json"]["examples"]
            assert code in examples, (method, template, code)
            seen += 1
    assert seen > 80
