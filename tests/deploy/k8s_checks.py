"""Checks on rendered Kubernetes manifests shared by the chart tests (plain asserts)."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = [
    "check_env_references",
    "check_hardened_pods",
    "check_no_secret_outside_secrets",
    "check_references",
    "check_selectors",
    "pod_specs",
    "secret_data",
]

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


def _is_test_hook(doc: dict[str, Any]) -> bool:
    return (doc["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"


def pod_specs(docs: Iterable[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(name, pod spec, long_running) of every workload's pod template and every bare Pod."""
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in WORKLOAD_KINDS:
            yield name, doc["spec"]["template"]["spec"], doc["kind"] != "Job"
        elif doc["kind"] == "Pod":
            yield name, doc["spec"], False


def secret_data(docs: Iterable[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Decoded data of every rendered Secret, by name."""
    out: dict[str, dict[str, str]] = {}
    for doc in docs:
        if doc["kind"] == "Secret":
            data = {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
            data.update(doc.get("stringData") or {})
            out[doc["metadata"]["name"]] = data
    return out


def check_no_secret_outside_secrets(docs: list[dict[str, Any]], secrets: Iterable[str]) -> None:
    """No secret value appears in a ConfigMap, or anywhere else outside a Secret."""
    import yaml

    for doc in docs:
        if doc["kind"] == "Secret":
            continue
        text = yaml.safe_dump(doc)
        for value in secrets:
            assert value not in text, \
                f"a secret value is rendered into {doc['kind']}/{doc['metadata']['name']}"


def check_hardened_pods(docs: list[dict[str, Any]]) -> None:
    """Probes on long-running containers; resources and a non-root, read-only context everywhere."""
    specs = list(pod_specs(docs))
    assert specs, "no pod rendered"
    for name, spec, long_running in specs:
        pod_ctx = spec.get("securityContext") or {}
        assert pod_ctx.get("runAsNonRoot") is True, f"{name}: pod securityContext.runAsNonRoot"
        assert spec.get("automountServiceAccountToken") is False, f"{name}: service account token mounted"
        volumes = {v["name"] for v in spec.get("volumes") or []}
        containers = spec.get("containers") or []
        assert containers, f"{name}: no containers"
        for kind, container in [("container", c) for c in containers] + \
                [("initContainer", c) for c in spec.get("initContainers") or []]:
            where = f"{name} {kind} {container['name']}"
            ctx = container.get("securityContext") or {}
            assert ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is True, f"{where}: may run as root"
            uid = ctx.get("runAsUser", pod_ctx.get("runAsUser"))
            assert uid is None or uid > 0, f"{where}: runAsUser {uid}"
            assert ctx.get("readOnlyRootFilesystem") is True, f"{where}: writable root filesystem"
            assert ctx.get("allowPrivilegeEscalation") is False, f"{where}: privilege escalation allowed"
            assert ctx.get("privileged") in (None, False), f"{where}: privileged"
            assert "ALL" in ((ctx.get("capabilities") or {}).get("drop") or []), f"{where}: capabilities kept"
            resources = container.get("resources") or {}
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(part) or {}), f"{where}: resources.{part}"
            mounts = container.get("volumeMounts") or []
            assert "/tmp" in {m["mountPath"] for m in mounts}, f"{where}: no writable /tmp"
            for mount in mounts:
                assert mount["name"] in volumes or mount["name"] in _claim_templates(docs, name), \
                    f"{where}: volume {mount['name']} is not defined"
            if kind == "container" and long_running:
                for probe in ("readinessProbe", "livenessProbe"):
                    assert container.get(probe), f"{where}: no {probe}"


def _claim_templates(docs: list[dict[str, Any]], name: str) -> set[str]:
    kind, _, short = name.partition("/")
    for doc in docs:
        if doc["kind"] == kind == "StatefulSet" and doc["metadata"]["name"] == short:
            return {t["metadata"]["name"] for t in doc["spec"].get("volumeClaimTemplates") or []}
    return set()


def check_selectors(docs: list[dict[str, Any]]) -> None:
    """Workload selectors match their pod labels; each Service selects exactly one workload."""
    templates: dict[str, dict[str, str]] = {}
    for doc in docs:
        if doc["kind"] in WORKLOAD_KINDS and doc["kind"] != "Job":
            selector = doc["spec"]["selector"]["matchLabels"]
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= labels.items(), f"{doc['metadata']['name']}: selector vs labels"
            templates[f"{doc['kind']}/{doc['metadata']['name']}"] = labels
    selectors = [d["spec"]["selector"]["matchLabels"] for d in docs if d["kind"] in WORKLOAD_KINDS
                 and d["kind"] != "Job"]
    for i, a in enumerate(selectors):  # two workloads must never select each other's pods
        for b in selectors[i + 1:]:
            assert not (a.items() <= b.items() or b.items() <= a.items()), "overlapping workload selectors"
    for service in (d for d in docs if d["kind"] == "Service"):
        selector = service["spec"]["selector"]
        matched = [n for n, labels in templates.items() if selector.items() <= labels.items()]
        assert len(matched) == 1, f"Service {service['metadata']['name']} selects {matched}"
        workload = next(d for d in docs if f"{d['kind']}/{d['metadata']['name']}" == matched[0])
        containers = workload["spec"]["template"]["spec"]["containers"]
        ports = {p["name"] for c in containers for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"Service {service['metadata']['name']}: targetPort {port}"


def check_references(docs: list[dict[str, Any]], existing_secrets: dict[str, set[str]] | None = None) -> None:
    """ConfigMap and Secret references (volumes, env) name rendered objects and keys, or the given
    pre-existing Secrets; HPAs and Ingresses point at rendered objects."""
    existing_secrets = existing_secrets or {}
    configmaps = {d["metadata"]["name"]: set(d.get("data") or {}) for d in docs if d["kind"] == "ConfigMap"}
    secrets = {n: set(v) for n, v in secret_data(docs).items()} | existing_secrets
    for name, spec, _ in pod_specs(docs):
        for volume in spec.get("volumes") or []:
            if "configMap" in volume:
                ref = volume["configMap"]
                assert ref["name"] in configmaps, f"{name}: ConfigMap {ref['name']} not rendered"
                for item in ref.get("items") or []:
                    assert item["key"] in configmaps[ref["name"]], f"{name}: ConfigMap key {item['key']}"
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets, f"{name}: Secret {volume['secret']}"
        for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            for env in container.get("env") or []:
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] in secrets, f"{name}: env {env['name']} names Secret {ref['name']}"
                    assert ref["key"] in secrets[ref["name"]], \
                        f"{name}: Secret {ref['name']} has no {ref['key']}"
    deployments = {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
    for hpa in (d for d in docs if d["kind"] == "HorizontalPodAutoscaler"):
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
    services = {d["metadata"]["name"]: {p["name"] for p in d["spec"]["ports"]}
                for d in docs if d["kind"] == "Service"}
    for ingress in (d for d in docs if d["kind"] == "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["name"] in services and backend["port"]["name"] in services[backend["name"]]


_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def check_env_references(docs: list[dict[str, Any]]) -> None:
    """``$(VAR)`` in an env value only names a variable defined earlier in the same container
    (Kubernetes leaves other references unexpanded)."""
    for name, spec, _ in pod_specs(docs):
        for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            seen: set[str] = set()
            for env in container.get("env") or []:
                for var in _VAR.findall(env.get("value") or ""):
                    assert var in seen, f"{name} {container['name']}: {env['name']} uses $({var}) too early"
                seen.add(env["name"])
