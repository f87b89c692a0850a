"""The lomas-client chart: JupyterLab with lomas_client, the server URL and token, the walkthrough."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from chart_render import CHARTS, ROOT, HelmRun, Render, Rendered
from k8s_checks import (
    check_hardened_pods,
    check_no_secret_outside_secrets,
    check_references,
    check_selectors,
    secret_data,
)

CHART = "lomas-client"
FULLNAME = "lomas-lomas-client"
LOMAS_TOKEN = "s3cr3t-researcher-token-51c0"
JUPYTER_TOKEN = "s3cr3t-jupyter-token-e7d2"

VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "tokens from values, persistent home": {
        "lomas": {"url": "http://lomas-lomas-server.stats.svc:8000", "dataset": "census",
                  "token": LOMAS_TOKEN},
        "jupyter": {"token": JUPYTER_TOKEN},
        "persistence": {"enabled": True, "size": "5Gi"},
    },
    "existing secrets": {
        "lomas": {"existingSecret": "alice-lomas", "existingSecretKey": "token", "dataset": ""},
        "jupyter": {"existingSecret": "alice-jupyter", "existingSecretKey": "token"},
        "persistence": {"enabled": True, "existingClaim": "alice-home"},
    },
}


@pytest.fixture(scope="module")
def renders(helm_template: Render) -> dict[str, Rendered]:
    return {name: helm_template(CHART, values) for name, values in VALUE_SETS.items()}


def jupyter_container(rendered: Rendered) -> dict[str, Any]:
    spec = rendered.get("Deployment", FULLNAME)["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] if c["name"] == "jupyterlab")


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env") or []}


def test_lint_strict(helm: HelmRun) -> None:
    done = helm("lint", "--strict", str(CHARTS / CHART))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_manifests_are_sound(renders: dict[str, Rendered], name: str) -> None:
    docs = renders[name].docs
    check_hardened_pods(docs)
    check_selectors(docs)
    check_references(docs, {"alice-lomas": {"token"}, "alice-jupyter": {"token"}})
    check_no_secret_outside_secrets(docs, [LOMAS_TOKEN, JUPYTER_TOKEN])


def test_walkthrough_configmap_equals_the_example(renders: dict[str, Rendered]) -> None:
    example = (ROOT / "examples" / "walkthrough.ipynb").read_text()
    assert (CHARTS / CHART / "files" / "walkthrough.ipynb").read_text() == example, \
        "copy examples/walkthrough.ipynb to deploy/helm/lomas-client/files/"
    configmap = renders["default"].get("ConfigMap", f"{FULLNAME}-notebooks")
    assert configmap["data"]["walkthrough.ipynb"] == example
    init = renders["default"].get("Deployment", FULLNAME)["spec"]["template"]["spec"]["initContainers"][0]
    assert "cp /etc/lomas/notebooks/walkthrough.ipynb /home/lomas/work/" in init["command"][-1]


def test_server_url_and_token_reach_the_environment(renders: dict[str, Rendered]) -> None:
    env = env_of(jupyter_container(renders["tokens from values, persistent home"]))
    assert env["LOMAS_URL"] == "http://lomas-lomas-server.stats.svc:8000"
    assert env["LOMAS_DATASET"] == "census"
    assert env["LOMAS_TOKEN"] == {"secretKeyRef": {"name": FULLNAME, "key": "lomas-token"}}
    assert env["JUPYTER_TOKEN"] == {"secretKeyRef": {"name": FULLNAME, "key": "jupyter-token"}}
    assert secret_data(renders["tokens from values, persistent home"].docs)[FULLNAME] == \
        {"lomas-token": LOMAS_TOKEN, "jupyter-token": JUPYTER_TOKEN}

    existing = renders["existing secrets"]
    env = env_of(jupyter_container(existing))
    assert env["LOMAS_TOKEN"] == {"secretKeyRef": {"name": "alice-lomas", "key": "token"}}
    assert env["JUPYTER_TOKEN"] == {"secretKeyRef": {"name": "alice-jupyter", "key": "token"}}
    assert "LOMAS_DATASET" not in env
    assert existing.names("Secret") == set() and existing.names("PersistentVolumeClaim") == set()

    default_env = env_of(jupyter_container(renders["default"]))
    assert "LOMAS_TOKEN" not in default_env  # no token configured: Client() says so clearly


def test_home_volume(renders: dict[str, Rendered]) -> None:
    def home(rendered: Rendered) -> dict[str, Any]:
        volumes = rendered.get("Deployment", FULLNAME)["spec"]["template"]["spec"]["volumes"]
        return next(v for v in volumes if v["name"] == "home")

    assert "emptyDir" in home(renders["default"])
    assert home(renders["tokens from values, persistent home"])["persistentVolumeClaim"]["claimName"] == \
        f"{FULLNAME}-home"
    pvc = renders["tokens from values, persistent home"].get("PersistentVolumeClaim", f"{FULLNAME}-home")
    assert pvc["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert home(renders["existing secrets"])["persistentVolumeClaim"]["claimName"] == "alice-home"


@pytest.mark.parametrize("values", [
    {"lomas": {"url": "lomas-server:8000"}},
    {"jupyter": {"port": "8888"}},
    {"securityContext": {"readOnlyRootFilesystem": False}},
    {"image": {"repository": ""}},
    {"token": "x"},
])
def test_schema_rejects_wrong_values(helm: HelmRun, tmp_path: Any, values: dict[str, Any]) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    done = helm("template", "lomas", str(CHARTS / CHART), "--values", str(path))
    assert done.returncode != 0 and "schema" in done.stderr, f"accepted {values}: {done.stderr}"
