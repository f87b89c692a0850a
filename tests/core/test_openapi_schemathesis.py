"""Schemathesis over the served OpenAPI document: generated requests for every operation, with a
researcher's and an admin's token, never get a 5xx, an undocumented status or a body that
violates the documented schema.

Bounded: ``LOMAS_SCHEMATHESIS_EXAMPLES`` examples per operation and token (default 8).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from lomas_core.testing.harness import LomasHarness

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES = int(os.environ.get("LOMAS_SCHEMATHESIS_EXAMPLES", "8"))
META = {"max_ids": 1, "rows": 40, "columns": {
    "x": {"type": "int", "lower": 0, "upper": 9},
    "y": {"type": "float", "lower": 0.0, "upper": 1.0},
    "g": {"type": "string", "categories": ["a", "b"]}}}
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


def _frame() -> Any:
    import pandas as pd

    return pd.DataFrame({"x": [i % 10 for i in range(40)], "y": [i / 40 for i in range(40)],
                         "g": ["a", "b"] * 20})


def _explore(client: Any, operation: Any, token: str, who: str, counts: dict[str, int],
             failures: list[str]) -> None:
    from hypothesis import HealthCheck, Phase, given, settings

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        counts["cases"] += 1
        kwargs = case.as_transport_kwargs(base_url="http://testserver")
        headers = {k: v for k, v in (kwargs.get("headers") or {}).items()
                   if k.lower() != "user-agent"}
        headers["Authorization"] = f"Bearer {token}"
        response = client.request(
            case.method, kwargs["url"].replace("http://testserver", ""), headers=headers,
            params=kwargs.get("params"), json=kwargs.get("json"), content=kwargs.get("data"))
        try:
            case.validate_response(response, checks=CHECKS)
        except Exception as exc:  # noqa: BLE001 - collected, reported together
            failures.append(f"{who} {case.method} {case.formatted_path} -> "
                            f"{response.status_code}: {str(exc)[:400]}")

    run()


@pytest.mark.timeout(180)
def test_schemathesis_finds_no_server_error_or_schema_violation(tmp_path: Path) -> None:
    h = LomasHarness(tmp_path, engines={"smartnoise_sql": {}, "opendp": {}, "diffprivlib": {}})
    h.add_dataset("ds", _frame(), META)
    researcher = h.add_user("alice", grant={"ds": (5.0, 1e-4)})
    counts = {"cases": 0, "operations": 0}
    failures: list[str] = []
    try:
        with h.client() as client:
            spec = client.get("/openapi.json").json()
            schema = schemathesis.openapi.from_dict(spec)
            for result in schema.get_all_operations():
                operation = result.ok()
                counts["operations"] += 1
                for who, token in (("researcher", researcher), ("admin", h.admin_token)):
                    _explore(client, operation, token, who, counts, failures)
    finally:
        h.close()
    print(f"schemathesis: {counts['operations']} operations, {counts['cases']} cases, "
          f"{len(failures)} failures")
    assert counts["operations"] >= 28
    assert not failures, "\n".join(failures[:20])
