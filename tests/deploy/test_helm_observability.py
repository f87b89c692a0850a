"""The lomas-server chart's observability objects: metrics port, ServiceMonitor, Grafana dashboard,
PodDisruptionBudget and NetworkPolicy (all optional), and the dashboard's queries."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from chart_render import CHARTS, NAMESPACE, HelmRun, Render, Rendered
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from lomas_core.config import Config
from lomas_core.observability import Metrics

CHART = "lomas-server"
FULLNAME = "lomas-lomas-server"
ALL_ON: dict[str, Any] = {
    "metrics": {"serviceMonitor": {"enabled": True, "interval": "15s",
                                   "labels": {"release": "kube-prometheus"}},
                "dashboard": {"enabled": True}},
    "podDisruptionBudget": {"enabled": True},
    "networkPolicy": {"enabled": True,
                      "apiFrom": [{"podSelector": {"matchLabels": {"app": "gateway"}}}],
                      "metricsFrom": [{"namespaceSelector": {"matchLabels": {
                          "kubernetes.io/metadata.name": "monitoring"}}}]},
}
OPTIONAL = ("ServiceMonitor", "PodDisruptionBudget", "NetworkPolicy")


@pytest.fixture(scope="module")
def default(helm_template: Render) -> Rendered:
    return helm_template(CHART, {})


@pytest.fixture(scope="module")
def all_on(helm_template: Render) -> Rendered:
    return helm_template(CHART, ALL_ON)


def test_lint_strict_with_everything_on(helm: HelmRun) -> None:
    args = ["--set-json", f"metrics={json.dumps(ALL_ON['metrics'])}",
            "--set-json", f"podDisruptionBudget={json.dumps(ALL_ON['podDisruptionBudget'])}",
            "--set-json", f"networkPolicy={json.dumps(ALL_ON['networkPolicy'])}"]
    done = helm("lint", "--strict", str(CHARTS / CHART), "--namespace", NAMESPACE, *args)
    assert done.returncode == 0, done.stdout + done.stderr


def test_optional_objects_are_off_by_default(default: Rendered) -> None:
    for kind in OPTIONAL:
        assert default.of_kind(kind) == []
    assert f"{FULLNAME}-dashboard" not in default.names("ConfigMap")


def test_metrics_have_their_own_port(default: Rendered) -> None:
    config = Config.model_validate(yaml.safe_load(
        default.get("ConfigMap", FULLNAME)["data"]["lomas.yaml"]))
    assert config.observability.metrics.port == 9090
    assert config.observability.metrics.host == "0.0.0.0"
    spec = default.get("Deployment", FULLNAME)["spec"]["template"]["spec"]
    server = next(c for c in spec["containers"] if c["name"] == "server")
    assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in server["ports"]
    ports = default.get("Service", FULLNAME)["spec"]["ports"]
    assert {p["name"]: p["targetPort"] for p in ports} == {"http": "http", "metrics": "metrics"}


def test_metrics_can_be_turned_off(helm_template: Render) -> None:
    off = helm_template(CHART, {"metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}})
    config = yaml.safe_load(off.get("ConfigMap", FULLNAME)["data"]["lomas.yaml"])
    assert config["observability"]["metrics"] == {"enabled": False}
    assert [p["name"] for p in off.get("Service", FULLNAME)["spec"]["ports"]] == ["http"]
    assert off.of_kind("ServiceMonitor") == []


def test_service_monitor(all_on: Rendered) -> None:
    monitor = all_on.get("ServiceMonitor", FULLNAME)
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus"
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics",
                                             "interval": "15s"}]
    service = all_on.get("Service", FULLNAME)
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()


def test_pdb_and_network_policy(all_on: Rendered) -> None:
    pod_labels = all_on.get("Deployment", FULLNAME)["spec"]["template"]["metadata"]["labels"]
    pdb = all_on.get("PodDisruptionBudget", FULLNAME)
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    policy = all_on.get("NetworkPolicy", FULLNAME)["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["policyTypes"] == ["Ingress"]  # egress to the store and data is not cut
    api, metrics = policy["ingress"]
    assert api["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert api["from"] == ALL_ON["networkPolicy"]["apiFrom"]
    assert metrics["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert metrics["from"] == ALL_ON["networkPolicy"]["metricsFrom"]


def exposed_names() -> set[str]:
    """Every sample name the server can expose (with a pool, so that its figures are there)."""
    metrics = Metrics()
    cache = SimpleNamespace(hits=0, loads=0, evictions=0, total_bytes=0)
    pool = SimpleNamespace(size=1, busy=0, replaced=0, kills={"timeout": 0})
    metrics.attach(SimpleNamespace(cache=cache, pool=pool))  # type: ignore[arg-type]
    names: set[str] = set()
    suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_count", "_sum"]}
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        names.update(family.name + s for s in suffixes[family.type])
    return names


def test_dashboard_loads_and_queries_existing_metrics(all_on: Rendered) -> None:
    data = all_on.get("ConfigMap", f"{FULLNAME}-dashboard")
    assert data["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(data["data"]["lomas.json"])
    assert dashboard["uid"] == "lomas-server" and dashboard["panels"]
    known = exposed_names()
    used: set[str] = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            found = set(re.findall(r"\blomas_[a-z_]+\b", target["expr"]))
            assert found, f"{panel['title']}: no lomas metric in {target['expr']}"
            assert found <= known, f"{panel['title']}: unknown {sorted(found - known)}"
            used |= found
    # every metric family has a panel
    families = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in known}
    assert families <= {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in used}
