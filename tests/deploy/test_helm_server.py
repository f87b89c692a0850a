"""The lomas-server chart: lint, renders for several value sets, and the rendered manifests' checks."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from chart_render import CHARTS, NAMESPACE, HelmRun, Render, Rendered
from k8s_checks import (
    check_env_references,
    check_hardened_pods,
    check_no_secret_outside_secrets,
    check_references,
    check_selectors,
    secret_data,
)

from lomas_core.config import Config

CHART = "lomas-server"
FULLNAME = "lomas-lomas-server"

ADMIN_TOKEN = "s3cr3t-admin-token-4f1c"
MONGO_PASSWORD = "s3cr3t-mongo-pass-77ab"
MONGO_URI = "mongodb://lomas:s3cr3t-uri-pass-9e2d@db0.example.org:27017/?replicaSet=rs0&tls=true"
S3_KEY_ID = "AKIAEXAMPLE0000"
S3_SECRET = "s3cr3t-s3-key-0a9d"
SECRET_VALUES = [ADMIN_TOKEN, MONGO_PASSWORD, "s3cr3t-uri-pass-9e2d", S3_SECRET]

#: Value sets rendered by the tests, by name.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "in-chart mongodb, secrets created from values": {
        "bootstrapAdmin": {"token": ADMIN_TOKEN},
        "mongodb": {"auth": {"rootPassword": MONGO_PASSWORD}},
        "s3": {"credentials": {"accessKeyId": S3_KEY_ID, "secretAccessKey": S3_SECRET,
                               "buckets": ["research-data"]}},
    },
    "external mongodb, secrets created from values": {
        "mongodb": {"enabled": False},
        "externalMongodb": {"enabled": True, "uri": MONGO_URI},
        "bootstrapAdmin": {"token": ADMIN_TOKEN},
        "s3": {"credentials": {"accessKeyId": S3_KEY_ID, "secretAccessKey": S3_SECRET}},
        "config": {"adapters": {"s3": {"endpoint_url": "https://minio.example.org",
                                       "allowed_buckets": ["shared"]}}},
    },
    "existing secrets": {
        "mongodb": {"auth": {"existingSecret": "mongo-creds", "existingSecretKey": "password"}},
        "bootstrapAdmin": {"existingSecret": "lomas-admin", "existingSecretKey": "token"},
        "s3": {"credentials": {"existingSecret": "s3-creds", "existingSecretKey": "creds",
                               "buckets": ["research-data"]}},
        "extraSecretEnv": [{"name": "DATA_API_TOKEN", "secretName": "data-api", "key": "token"}],
    },
    "external mongodb, existing secret": {
        "mongodb": {"enabled": False},
        "externalMongodb": {"enabled": True, "existingSecret": "atlas", "existingSecretKey": "uri"},
        "bootstrapAdmin": {"existingSecret": "lomas-admin"},
    },
    "ingress and autoscaling": {
        "ingress": {"enabled": True, "className": "nginx",
                    "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
                    "hosts": [{"host": "dp.stats.example", "paths": [{"path": "/", "pathType": "Prefix"}]}],
                    "tls": [{"secretName": "dp-tls", "hosts": ["dp.stats.example"]}]},
        "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 8,
                        "targetMemoryUtilizationPercentage": 80},
    },
    "sqlite store, no mongodb, no bootstrap": {
        "mongodb": {"enabled": False},
        "bootstrapAdmin": {"enabled": False},
        "config": {"store": {"name": "sqlite", "options": {"path": "/var/lib/lomas/lomas.db"}},
                   "adapters": {"local": {"allowed_dirs": ["/data"]}}},
        "extraVolumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "datasets"}}],
        "extraVolumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
    },
}
SSO = {"enabled": True, "issuer": "https://id.example.org/realms/research",
       "audience": ["lomas"], "userClaim": "preferred_username", "createUsers": True,
       "adminClaim": "realm_access.roles", "adminValue": "lomas-admin"}
VALUE_SETS["single sign-on"] = {"sso": SSO}
EXISTING = {"mongo-creds": {"password"}, "lomas-admin": {"token"}, "s3-creds": {"creds"},
            "data-api": {"token"}, "atlas": {"uri"}}


@pytest.fixture(scope="module")
def renders(helm_template: Render) -> dict[str, Rendered]:
    return {name: helm_template(CHART, values) for name, values in VALUE_SETS.items()}


def server_config(rendered: Rendered) -> dict[str, Any]:
    raw = yaml.safe_load(rendered.get("ConfigMap", FULLNAME)["data"]["lomas.yaml"])
    assert isinstance(raw, dict)
    return raw


def server_container(rendered: Rendered, name: str = "server") -> dict[str, Any]:
    spec = rendered.get("Deployment", FULLNAME)["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] + spec.get("initContainers", []) if c["name"] == name)


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env") or []}


def test_lint_strict(helm: HelmRun) -> None:
    done = helm("lint", "--strict", str(CHARTS / CHART))
    assert done.returncode == 0, done.stdout + done.stderr
    for values in VALUE_SETS.values():
        done = helm("lint", "--strict", str(CHARTS / CHART), "--namespace", NAMESPACE,
                    *[a for k, v in _flat(values) for a in ("--set-json", f"{k}={json.dumps(v)}")])
        assert done.returncode == 0, done.stdout + done.stderr


def _flat(values: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out += _flat(value, path + ".")
        else:
            out.append((path, value))
    return out


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_manifests_are_sound(renders: dict[str, Rendered], name: str) -> None:
    docs = renders[name].docs
    check_hardened_pods(docs)
    check_selectors(docs)
    check_references(docs, {k: set(v) for k, v in EXISTING.items()})
    check_env_references(docs)
    check_no_secret_outside_secrets(docs, SECRET_VALUES)
    for doc in docs:
        labels = doc["metadata"].get("labels") or {}
        assert labels.get("app.kubernetes.io/instance") == "lomas", f"{doc['kind']} without release label"


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_configmap_is_a_valid_server_config(renders: dict[str, Rendered], name: str) -> None:
    raw = server_config(renders[name])
    config = Config.model_validate(raw)
    assert config.server.host == "0.0.0.0"
    for ref in config.secrets.values():  # secrets are references, never values
        assert (ref.env is None) != (ref.file is None)
    deployment_env = env_of(server_container(renders[name]))
    for secret_name, ref in config.secrets.items():
        assert ref.env in deployment_env, f"secret {secret_name}: {ref.env} is not set in the server pod"
    port = server_container(renders[name])["ports"][0]["containerPort"]
    assert port == config.server.port


def test_user_config_is_rendered_unchanged_in_shape(renders: dict[str, Rendered]) -> None:
    values = yaml.safe_load((CHARTS / CHART / "values.yaml").read_text())
    raw = server_config(renders["default"])
    for section in ("server", "engines", "adapters", "limits", "cache"):
        assert raw[section] == values["config"][section]
    assert raw["store"] == {"name": "mongodb", "options": {"uri_secret": "mongo_uri"}}
    sqlite = server_config(renders["sqlite store, no mongodb, no bootstrap"])
    assert sqlite["store"] == {"name": "sqlite", "options": {"path": "/var/lib/lomas/lomas.db"}}
    assert sqlite["secrets"] == {}


def test_mongodb_store_options_are_valid(renders: dict[str, Rendered]) -> None:
    options = pytest.importorskip("lomas_store_mongodb.options")
    for name in ("default", "external mongodb, secrets created from values"):
        store = server_config(renders[name])["store"]
        parsed = options.parse_options(store["options"])
        assert parsed.uri_secret == "mongo_uri" and parsed.uri is None


def test_secrets_created_from_values(renders: dict[str, Rendered]) -> None:
    rendered = renders["in-chart mongodb, secrets created from values"]
    data = secret_data(rendered.docs)
    assert data[FULLNAME] == {"admin-token": ADMIN_TOKEN, "s3-credentials": f"{S3_KEY_ID}:{S3_SECRET}"}
    assert data[f"{FULLNAME}-mongodb"] == {"mongodb-root-password": MONGO_PASSWORD}
    config = server_config(rendered)
    assert config["adapters"]["s3"]["default_credentials"] == "s3_credentials"
    # Scoped: only the s3 adapter, with its endpoint (AWS here) and the listed buckets.
    assert config["secrets"]["s3_credentials"] == {
        "env": "LOMAS_S3_CREDENTIALS", "adapters": ["s3"], "endpoints": ["aws"],
        "buckets": ["research-data"]}
    # The server composes the URI from the password Secret; the admin token stays in the init step.
    env = env_of(server_container(rendered))
    assert env["LOMAS_MONGO_URI"] == ("mongodb://$(LOMAS_MONGODB_USER):$(LOMAS_MONGODB_PASSWORD)"
                                      f"@{FULLNAME}-mongodb:27017/?authSource=admin")
    assert "LOMAS_ADMIN_TOKEN" not in env
    assert env_of(server_container(rendered, "bootstrap-admin"))["LOMAS_ADMIN_TOKEN"] == \
        {"secretKeyRef": {"name": FULLNAME, "key": "admin-token"}}

    external = renders["external mongodb, secrets created from values"]
    assert server_config(external)["secrets"]["s3_credentials"] == {
        "env": "LOMAS_S3_CREDENTIALS", "adapters": ["s3"],
        "endpoints": ["https://minio.example.org"], "buckets": ["shared"]}
    assert secret_data(external.docs)[FULLNAME]["mongodb-uri"] == MONGO_URI
    assert not external.of_kind("StatefulSet")
    assert env_of(server_container(external))["LOMAS_MONGO_URI"] == \
        {"secretKeyRef": {"name": FULLNAME, "key": "mongodb-uri"}}


def test_generated_secrets_look_random(renders: dict[str, Rendered]) -> None:
    data = secret_data(renders["default"].docs)
    assert re.fullmatch(r"lomas_[A-Za-z0-9]{43}", data[FULLNAME]["admin-token"])
    assert re.fullmatch(r"[A-Za-z0-9]{32}", data[f"{FULLNAME}-mongodb"]["mongodb-root-password"])


def test_existing_secrets_are_referenced_not_created(renders: dict[str, Rendered]) -> None:
    rendered = renders["existing secrets"]
    assert rendered.names("Secret") == set()
    env = env_of(server_container(rendered))
    assert env["LOMAS_MONGODB_PASSWORD"] == {"secretKeyRef": {"name": "mongo-creds", "key": "password"}}
    assert env["LOMAS_S3_CREDENTIALS"] == {"secretKeyRef": {"name": "s3-creds", "key": "creds"}}
    assert env["DATA_API_TOKEN"] == {"secretKeyRef": {"name": "data-api", "key": "token"}}
    assert env_of(server_container(rendered, "bootstrap-admin"))["LOMAS_ADMIN_TOKEN"] == \
        {"secretKeyRef": {"name": "lomas-admin", "key": "token"}}
    mongo = rendered.get("StatefulSet", f"{FULLNAME}-mongodb")["spec"]["template"]["spec"]["containers"][0]
    assert env_of(mongo)["MONGO_INITDB_ROOT_PASSWORD"] == \
        {"secretKeyRef": {"name": "mongo-creds", "key": "password"}}

    external = renders["external mongodb, existing secret"]
    assert external.names("Secret") == set()
    assert env_of(server_container(external))["LOMAS_MONGO_URI"] == \
        {"secretKeyRef": {"name": "atlas", "key": "uri"}}


def test_in_chart_mongodb_is_persistent(renders: dict[str, Rendered]) -> None:
    statefulset = renders["default"].get("StatefulSet", f"{FULLNAME}-mongodb")
    claims = statefulset["spec"]["volumeClaimTemplates"]
    assert [c["metadata"]["name"] for c in claims] == ["data"]
    assert claims[0]["spec"]["resources"]["requests"]["storage"] == "8Gi"
    service = renders["default"].get("Service", f"{FULLNAME}-mongodb")
    assert service["spec"]["clusterIP"] == "None"
    assert statefulset["spec"]["serviceName"] == f"{FULLNAME}-mongodb"


def test_probes_call_health(renders: dict[str, Rendered]) -> None:
    # Liveness never depends on the store: a MongoDB outage takes pods out of the Service
    # (readiness) instead of restarting them all.
    server = server_container(renders["default"])
    assert server["startupProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert server["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert server["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert server["command"] == ["lomas"] and server["args"][:1] == ["serve"]


def test_ingress_and_autoscaling(renders: dict[str, Rendered]) -> None:
    rendered = renders["ingress and autoscaling"]
    ingress = rendered.get("Ingress", FULLNAME)
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"secretName": "dp-tls", "hosts": ["dp.stats.example"]}]
    hpa = rendered.get("HorizontalPodAutoscaler", FULLNAME)
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}
    assert "replicas" not in rendered.get("Deployment", FULLNAME)["spec"]
    assert not renders["default"].of_kind("Ingress")
    assert not renders["default"].of_kind("HorizontalPodAutoscaler")


def test_helm_test_pod_calls_health(renders: dict[str, Rendered]) -> None:
    pod = renders["default"].get("Pod", f"{FULLNAME}-test-health")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = " ".join(pod["spec"]["containers"][0]["command"])
    assert f"http://{FULLNAME}:8000/health" in script


def test_config_change_rolls_the_pods(helm_template: Render) -> None:
    def checksum(values: dict[str, Any]) -> str:
        deployment = helm_template(CHART, values).get("Deployment", FULLNAME)
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum({}) == checksum({"replicaCount": 1})
    assert checksum({}) != checksum({"config": {"limits": {"max_inflight_per_user": 2}}})


def test_notes_tell_how_to_reach_the_api_and_get_the_token(helm: HelmRun) -> None:
    done = helm("install", "lomas", str(CHARTS / CHART), "--dry-run=client", "--namespace", NAMESPACE)
    assert done.returncode == 0, done.stderr
    notes = done.stdout.split("NOTES:", 1)[1]
    assert f"port-forward service/{FULLNAME} 8000:8000" in notes
    assert f"get secret {FULLNAME} -o jsonpath='{{.data.admin-token}}' | base64 -d" in notes
    assert "admin token issue" in notes
    assert "Single sign-on" not in notes


def test_notes_tell_researchers_how_to_log_in_with_sso(helm: HelmRun, tmp_path: Any) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump({"sso": SSO}))
    done = helm("install", "lomas", str(CHARTS / CHART), "--dry-run=client", "--namespace",
                NAMESPACE, "--values", str(path))
    assert done.returncode == 0, done.stderr
    notes = done.stdout.split("NOTES:", 1)[1]
    assert "Single sign-on is on" in notes and f'Client.login(issuer="{SSO["issuer"]}"' in notes


@pytest.mark.parametrize(("values", "message"), [
    ({"replicaCount": -1}, "replicaCount"),
    ({"replicaCount": "three"}, "replicaCount"),
    ({"service": {"port": 70000}}, "port"),
    ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
    ({"securityContext": {"readOnlyRootFilesystem": False}}, "readOnlyRootFilesystem"),
    ({"podSecurityContext": {"runAsNonRoot": False}}, "runAsNonRoot"),
    ({"resources": {"requests": {"cpu": "lots"}}}, "cpu"),
    ({"config": {"secrets": {"mongo_uri": {"value": "mongodb://u:p@h"}}}}, "secrets"),
    ({"config": {"server": {"port": "http"}}}, "port"),
    ({"autoscaling": {"enabled": "yes"}}, "enabled"),
    ({"mongodb": {"auth": {"rootPassword": "p@ss/word"}}}, "rootPassword"),
    ({"replicas": 2}, "replicas"),
    ({"sso": {"issuer": "http://id.example.org"}}, "issuer"),
    ({"sso": {"algorithms": ["HS256"]}}, "algorithms"),
    ({"sso": {"clientSecret": "x"}}, "clientSecret"),
])
def test_schema_rejects_wrong_values(helm: HelmRun, tmp_path: Any, values: dict[str, Any],
                                     message: str) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    done = helm("template", "lomas", str(CHARTS / CHART), "--values", str(path))
    assert done.returncode != 0, f"accepted {values}"
    assert "schema" in done.stderr and message in done.stderr, done.stderr


@pytest.mark.parametrize(("values", "message"), [
    ({"externalMongodb": {"enabled": True, "uri": MONGO_URI}}, "exclude each other"),
    ({"mongodb": {"enabled": False}, "externalMongodb": {"enabled": True}}, "externalMongodb.uri"),
    ({"mongodb": {"enabled": False}, "replicaCount": 3,
      "config": {"store": {"name": "sqlite", "options": {"path": "/var/lib/lomas/l.db"}}}}, "sqlite"),
    ({"s3": {"credentials": {"accessKeyId": S3_KEY_ID}}}, "secretAccessKey"),
    ({"s3": {"credentials": {"accessKeyId": S3_KEY_ID, "secretAccessKey": S3_SECRET}}},
     "s3.credentials.buckets"),
    ({"sso": {"enabled": True, "audience": ["lomas"]}}, "sso.issuer"),
    ({"sso": {"enabled": True, "issuer": "https://id.example.org"}}, "sso.audience"),
    ({"sso": {**SSO, "adminValue": ""}}, "sso.adminValue"),
])
def test_inconsistent_values_fail_with_a_clear_message(helm: HelmRun, tmp_path: Any, values: dict[str, Any],
                                                       message: str) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    done = helm("template", "lomas", str(CHARTS / CHART), "--values", str(path))
    assert done.returncode != 0 and message in done.stderr, done.stderr


def test_a_default_plugin_is_disabled_with_null(helm_template: Render) -> None:
    values = {"config": {"engines": {"smartnoise_sql": None}, "adapters": {"http": None}}}
    rendered = helm_template(CHART, values)
    raw = server_config(rendered)
    assert raw["engines"] == {"opendp": {}, "diffprivlib": {}}
    assert set(raw["adapters"]) == {"local", "s3"}


def test_sso_values_render_the_authenticators(renders: dict[str, Rendered],
                                              helm_template: Render) -> None:
    assert "authenticators" not in server_config(renders["default"])  # the server's default: token
    raw = server_config(renders["single sign-on"])
    assert list(raw["authenticators"]) == ["oidc", "token"]
    oidc = raw["authenticators"]["oidc"]
    assert oidc["issuer"] == SSO["issuer"] and oidc["audience"] == ["lomas"]
    assert (oidc["admin_claim"], oidc["admin_value"]) == ("realm_access.roles", "lomas-admin")
    assert oidc["create_users"] is True and oidc["algorithms"] == ["RS256", "ES256"]
    config = Config.model_validate(raw)
    from lomas_authenticator_oidc.options import parse_options  # the plugin accepts them as rendered

    assert parse_options(config.authenticators["oidc"]).user_claim == "preferred_username"
    only_sso = server_config(helm_template(CHART, {"sso": {**SSO, "keepTokens": False}}))
    assert list(only_sso["authenticators"]) == ["oidc"]
