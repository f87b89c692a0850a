"""A whole run with an S3 dataset (credentials from a named secret, checked by moto's IAM mode) and an
HTTP dataset (a header from a named secret): no response body, archive record, stored admin state,
config file or log line ever contains either secret, including on failures with wrong secrets and
when an admin tries to send the secrets (or the bootstrap admin token) elsewhere."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from lomas_adapter_s3.testing import MotoS3, table_bytes

from lomas_core.testing.engine_contract import CONTRACT_METADATA, contract_table
from lomas_core.testing.harness import LomasHarness

http_testing = pytest.importorskip("lomas_adapter_http.testing")

#: Both test servers are on loopback, which the network adapters refuse unless allowed.
LOOPBACK = {"allowed_networks": ["127.0.0.1/32"]}

HTTP_SECRET = "hdr-Vq3xW9-token-never-shown"
WRONG_HTTP_SECRET = "hdr-wrong-Pz8-never-shown"
WRONG_S3_SECRET = "wrong-s3-secret-Lm4/never+shown"
GRANT = {"s3ds": (50.0, 1e-3), "httpds": (50.0, 1e-3), "s3bad": (50.0, 1e-3), "httpbad": (50.0, 1e-3)}


@pytest.fixture
def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    csv = table_bytes(contract_table(), "csv")
    meta = yaml.safe_dump(CONTRACT_METADATA).encode()
    with MotoS3() as s3, http_testing.FileServer() as web:
        s3.client.create_bucket(Bucket="private")
        s3.client.put_object(Bucket="private", Key="people.parquet",
                             Body=table_bytes(contract_table(), "parquet"))
        s3.client.put_object(Bucket="private", Key="people.yaml", Body=meta)
        key_id, secret = s3.require_auth()
        web.put("/people.csv", csv, require={"Authorization": f"Bearer {HTTP_SECRET}"})
        web.put("/people.yaml", meta, require={"Authorization": f"Bearer {HTTP_SECRET}"})
        # One secret from an environment variable, one from a file, for each adapter.
        monkeypatch.setenv("LOMAS_GREP_S3", f"{key_id}:{secret}")
        monkeypatch.setenv("LOMAS_GREP_HTTP", HTTP_SECRET)
        (tmp_path / "s3-wrong").write_text(f"{key_id}:{WRONG_S3_SECRET}\n")
        (tmp_path / "http-wrong").write_text(WRONG_HTTP_SECRET + "\n")
        s3_scope = {"adapters": ["s3"], "endpoints": [s3.endpoint_url], "buckets": ["private"]}
        http_scope = {"adapters": ["http"], "allowed_prefixes": [web.url("/")]}
        yield {"s3": s3, "web": web, "secrets": [secret, HTTP_SECRET, WRONG_S3_SECRET,
                                                    WRONG_HTTP_SECRET],
               "config_secrets": {
                   "s3_reader": {"env": "LOMAS_GREP_S3", **s3_scope},
                   "s3_wrong": {"file": str(tmp_path / "s3-wrong"), **s3_scope},
                   "portal": {"env": "LOMAS_GREP_HTTP", **http_scope},
                   "portal_wrong": {"file": str(tmp_path / "http-wrong"), **http_scope}}}


def _descriptions(sources: dict[str, Any]) -> list[dict[str, Any]]:
    web = sources["web"]
    s3 = {"bucket": "private", "key": "people.parquet", "metadata_key": "people.yaml"}
    http = {"url": web.url("/people.csv"), "metadata_url": web.url("/people.yaml")}
    return [
        {"name": "s3ds", "adapter": "s3", "options": {**s3, "credentials": "s3_reader"}},
        {"name": "s3bad", "adapter": "s3", "options": {**s3, "credentials": "s3_wrong"}},
        {"name": "httpds", "adapter": "http", "options": {
            **http, "headers": {"Authorization": {"secret": "portal", "prefix": "Bearer "}}}},
        {"name": "httpbad", "adapter": "http", "options": {
            **http, "headers": {"Authorization": {"secret": "portal_wrong", "prefix": "Bearer "}}}},
    ]


def _attacks(sources: dict[str, Any]) -> list[dict[str, Any]]:
    """Descriptions an attacking admin would register (each must be refused)."""
    web = sources["web"]
    meta = {"metadata": CONTRACT_METADATA}
    return [
        {"name": "leak1", "adapter": "http", **meta, "options": {
            "url": web.url("/people.csv"), "headers": {"X-Leak": {"secret": "s3_reader"}}}},
        {"name": "leak2", "adapter": "http", **meta, "options": {
            "url": web.url("/people.csv"), "headers": {"X-Leak": {"secret": "harness_admin"}}}},
        {"name": "leak3", "adapter": "s3", **meta, "options": {
            "bucket": "private", "key": "people.parquet", "credentials": "portal"}},
        {"name": "leak4", "adapter": "s3", **meta, "options": {
            "bucket": "other", "key": "people.parquet", "credentials": "s3_reader"}},
        {"name": "ssrf", "adapter": "http", **meta, "options": {
            "url": "http://169.254.169.254/latest/meta-data/iam.csv",
            "headers": {"Authorization": {"secret": "portal", "prefix": "Bearer "}}}},
    ]


def _run(h: LomasHarness, sources: dict[str, Any], client: Callable[[str | None], Any]) -> list[str]:
    """Every admin and researcher call of a typical session; returns the response bodies."""
    bodies: list[str] = []

    def keep(r: httpx.Response, *ok: int) -> httpx.Response:
        bodies.append(r.text + "\n" + "\n".join(f"{k}: {v}" for k, v in r.headers.items()))
        assert r.status_code in ok, r.text
        return r

    with client(h.admin_token) as admin:
        for desc in _descriptions(sources):
            r = keep(admin.post("/v1/admin/datasets?replace=true", json=desc), 201, 400)
            if r.status_code == 400:  # refused up front (as by the CLI): store it anyway so that
                h.add_dataset_description(desc)  # the researcher calls below meet it too
        for desc in _attacks(sources):  # secrets sent elsewhere, SSRF: refused, nothing echoed
            keep(admin.post("/v1/admin/datasets", json=desc), 400)
        keep(admin.post("/v1/admin/users", json={"name": "alice"}), 201)
        token = keep(admin.post("/v1/admin/users/alice/tokens"), 201).json()["token"]
        for dataset, (eps, delta) in GRANT.items():
            keep(admin.post("/v1/admin/grants", json={"user": "alice", "dataset": dataset,
                                                      "epsilon": eps, "delta": delta}), 201)
        keep(admin.get("/v1/admin/datasets"), 200)
        keep(admin.get("/v1/admin/datasets/s3ds"), 200)
        keep(admin.get("/v1/admin/datasets/httpds"), 200)
        keep(admin.get("/v1/admin/plugins"), 200)
    with client(token) as c:
        keep(c.get("/v1/datasets"), 200)
        for good, bad in (("s3ds", "s3bad"), ("httpds", "httpbad")):
            keep(c.get(f"/v1/datasets/{good}/metadata"), 200)
            keep(c.post(f"/v1/datasets/{good}/dummy", json={"rows": 5, "seed": 1}), 200)
            keep(c.post(f"/v1/datasets/{good}/cost", json={"engine": "toy_count",
                                                             "query": {"epsilon": 0.1}}), 200)
            for engine, query in (("toy_count", {"epsilon": 0.1}), ("toy_faulty", {"epsilon": 0.1}),
                                  ("toy_faulty", {"epsilon": 0.1, "action": "raise"})):
                keep(c.post(f"/v1/datasets/{good}/query", json={"engine": engine, "query": query}),
                     200, 422)
            keep(c.get(f"/v1/datasets/{bad}/metadata"), 503)
            keep(c.post(f"/v1/datasets/{bad}/query", json={"engine": "toy_count",
                                                          "query": {"epsilon": 0.1}}), 503)
            keep(c.get(f"/v1/datasets/{good}/queries"), 200)
            keep(c.get(f"/v1/datasets/{good}/budget"), 200)
    with client(h.admin_token) as admin:
        archive = keep(admin.get("/v1/admin/archive"), 200).json()["queries"]
    assert {q["status"] for q in archive} == {"success", "failed"}
    return bodies


def _assert_clean(texts: dict[str, str], secrets: list[str]) -> None:
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"a secret appears in {where}"


def _stored(h: LomasHarness) -> dict[str, str]:
    texts = {"archive": "\n".join(r.model_dump_json() for r in h.store.list_archive(None, None)),
             "datasets": "\n".join(d.model_dump_json() for d in h.store.list_datasets())}
    for path in h.tmp_path.rglob("*"):  # the SQLite files and the written config
        if path.is_file() and not path.name.startswith("server-"):
            texts[path.name] = path.read_bytes().decode("latin-1")
    return texts


def test_no_secret_in_responses_archive_state_or_logs_in_process(
        tmp_path: Path, sources: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    """In-process, with every logger (botocore, s3fs, httpx, lomas) captured at DEBUG."""
    h = LomasHarness(tmp_path / "lomas", engines={"toy_count": {}, "toy_faulty": {}},
                     adapters={"s3": {"endpoint_url": sources["s3"].endpoint_url, "max_attempts": 1,
                                      "region": sources["s3"].region, **LOOPBACK},
                               "http": {"allowed_hosts": ["127.0.0.1"], **LOOPBACK}},
                     secrets=sources["config_secrets"])
    caplog.set_level(logging.DEBUG)
    bodies = _run(h, sources, lambda token: h.client(token))
    assert any("dataset 's3bad'" in b and "refused access" in b for b in bodies)
    assert any("dataset 'httpbad'" in b and "refused access" in b for b in bodies)
    assert any(r.name.startswith("botocore") for r in caplog.records)  # DEBUG really captured
    texts = {f"response {i}": b for i, b in enumerate(bodies)}
    texts["log"] = caplog.text + "\n".join(str(r.__dict__) for r in caplog.records)
    _assert_clean({**texts, **_stored(h)}, [*sources["secrets"], h.admin_token])
    h.close()


def test_no_secret_in_responses_archive_state_or_logs_of_a_server(
        tmp_path: Path, sources: dict[str, Any]) -> None:
    """A real server process; its whole output (warnings and errors of every logger) is searched."""
    h = LomasHarness(tmp_path / "lomas", engines={"toy_count": {}, "toy_faulty": {}},
                     adapters={"s3": {"endpoint_url": sources["s3"].endpoint_url, "max_attempts": 1,
                                      "region": sources["s3"].region, **LOOPBACK},
                               "http": {"allowed_hosts": ["127.0.0.1"], **LOOPBACK}},
                     secrets=sources["config_secrets"])
    with h.serve() as url:
        bodies = _run(h, sources, lambda token: httpx.Client(
            base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"} if token else {}))
    log = h.server_log()
    assert "dataset_unavailable" in log  # the failures were logged, without their secrets
    texts = {f"response {i}": b for i, b in enumerate(bodies)}
    texts["server log"] = log
    _assert_clean({**texts, **_stored(h)}, [*sources["secrets"], h.admin_token])
    h.close()
