"""deploy/kubernetes/: the committed manifests are the rendering of aimass/deploy/kubernetes.py,
and they validate statically, strictly (an unknown field is an error), against Kubernetes'
own schemas (kubernetes-validate) and the Flink Kubernetes Operator's CRD (from the operator's
API jar on Maven Central, resolved by pom.xml into .state/jars/schemas/)."""

from __future__ import annotations

import copy
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from aimass.deploy import kubernetes as k8s
from aimass.settings import PROJECT_ROOT, Settings
from aimass.stack.flink import FlinkCluster

MANIFESTS = PROJECT_ROOT / "deploy" / "kubernetes"
#: Kubernetes versions the manifests must be valid for: an old supported one and the newest known.
K8S_VERSIONS = ("1.30", kubernetes_validate.latest_version())
#: The one difference between the operator API on Maven Central here (1.10.0) and the release the
#: manifests target (1.13+, which knows Flink 2.2): the flinkVersion enum (FLINK-38147 added v2_1
#: and v2_2). Nothing else is relaxed.
NEWER_FLINK_VERSIONS = ("v2_0", "v2_1", "v2_2")


@pytest.fixture(scope="module")
def example() -> Settings:
    return Settings.load(env=k8s.EXAMPLE_ENV)


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    files = sorted(MANIFESTS.glob("*.yaml"))
    assert files, f"no manifests in {MANIFESTS}"
    return [doc for path in files if path.name != "kustomization.yaml" for doc in yaml.safe_load_all(path.read_text())]


def _crd_schema() -> dict[str, Any]:
    jars = sorted((Settings().paths.jars_dir / "schemas").glob("flink-kubernetes-operator-api-*.jar"))
    assert jars, "the operator's API jar is missing in .state/jars/schemas: run `make setup` (pom.xml resolves it)"
    with zipfile.ZipFile(jars[-1]) as jar:
        crd = yaml.safe_load(jar.read("META-INF/fabric8/flinkdeployments.flink.apache.org-v1.yml"))
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    return dict(version["schema"]["openAPIV3Schema"])


def _strict(schema: Any) -> Any:
    """An OpenAPI v3 structural schema as a strict JSON schema (what kubeconform's
    openapi2jsonschema --strict does): objects with listed properties refuse others."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items() if not key.startswith("x-kubernetes-")}
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in schema and "additionalProperties" not in schema \
            and not schema.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


@pytest.fixture(scope="module")
def crd_validator() -> jsonschema.protocols.Validator:
    schema = _crd_schema()
    enum = schema["properties"]["spec"]["properties"]["flinkVersion"]["enum"]
    enum.extend(v for v in NEWER_FLINK_VERSIONS if v not in enum)
    # What the API server adds to every custom resource's schema.
    schema["properties"].update({
        "apiVersion": {"enum": ["flink.apache.org/v1beta1"]},
        "kind": {"enum": ["FlinkDeployment"]},
        "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    })
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata", "spec"})
    strict = _strict(schema)
    jsonschema.Draft7Validator.check_schema(strict)
    return jsonschema.Draft7Validator(strict)


def test_the_committed_manifests_are_the_rendering_of_the_example(example: Settings) -> None:
    texts = k8s.texts(example)
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in MANIFESTS.glob("*.yaml")}
    regenerate = "regenerate: aimass kubernetes --example --out deploy/kubernetes"
    assert sorted(on_disk) == sorted(texts), regenerate
    stale = [name for name, text in texts.items() if on_disk[name] != text]
    assert not stale, f"{stale} differ from the rendering; {regenerate}"


def test_the_cli_check_finds_drift(tmp_path: Path) -> None:
    from aimass.cli import main

    assert main(["kubernetes", "--example", "--check", str(MANIFESTS)]) == 0
    assert main(["kubernetes", "--example", "--out", str(tmp_path)]) == 0
    edited = tmp_path / "gateway.yaml"
    edited.write_text(edited.read_text().replace("replicas: 2", "replicas: 3"))
    assert main(["kubernetes", "--example", "--check", str(tmp_path)]) == 1


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_objects_validate_strictly(objects: list[dict[str, Any]], version: str) -> None:
    core = [o for o in objects if o["kind"] != "FlinkDeployment"]
    assert {o["kind"] for o in core} == {"ConfigMap", "Deployment", "Service"}
    for obj in core:
        kubernetes_validate.validate(obj, version, strict=True)
    # The operator's pod template is a Pod: check it against Kubernetes' own Pod schema too.
    (deployment,) = [o for o in objects if o["kind"] == "FlinkDeployment"]
    kubernetes_validate.validate(deployment["spec"]["podTemplate"], version, strict=True)


def test_the_flink_deployment_validates_against_the_operators_crd(
    objects: list[dict[str, Any]], crd_validator: jsonschema.protocols.Validator
) -> None:
    (deployment,) = [o for o in objects if o["kind"] == "FlinkDeployment"]
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in crd_validator.iter_errors(deployment)]
    assert not errors, errors


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "job", "upgradeMode"), "last_state"),  # not in the enum
        (("spec", "taskManager", "resources"), {"memory": "2g"}),  # a misspelt field
        (("spec", "jobManager", "replicas"), "one"),  # wrong type
        (("spec", "podTemplate", "spec", "containers", 0, "envFrom", 0, "configMapRf"), {"name": "x"}),
    ],
)
def test_the_crd_check_can_fail(
    objects: list[dict[str, Any]], crd_validator: jsonschema.protocols.Validator, path: tuple[Any, ...], value: Any
) -> None:
    (deployment,) = [copy.deepcopy(o) for o in objects if o["kind"] == "FlinkDeployment"]
    target = deployment
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    assert list(crd_validator.iter_errors(deployment))


def test_the_core_check_can_fail(objects: list[dict[str, Any]]) -> None:
    (gateway,) = [copy.deepcopy(o) for o in objects if o["kind"] == "Deployment"]
    gateway["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["prot"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(gateway, K8S_VERSIONS[-1], strict=True)


def test_the_operator_autoscaler_band_is_ours() -> None:
    settings = Settings.load(env={"AIMASS_AUTOSCALE_SCALE_UP_BUSY": "0.9", "AIMASS_AUTOSCALE_SCALE_DOWN_BUSY": "0.2",
                                  "AIMASS_AUTOSCALE_MAX_PARALLELISM": "6", "AIMASS_AUTOSCALE_COOLDOWN_S": "120",
                                  "AIMASS_AUTOSCALE_INTERVAL_S": "30", "AIMASS_AUTOSCALE_SUSTAIN_SAMPLES": "4"})
    config = k8s.autoscaler_config(settings.autoscale)
    assert config["job.autoscaler.utilization.max"] == "0.9"
    assert config["job.autoscaler.utilization.min"] == "0.2"
    assert config["job.autoscaler.utilization.target"] == "0.55"
    assert config["job.autoscaler.vertex.max-parallelism"] == "6"
    assert config["job.autoscaler.stabilization.interval"] == "120s"
    assert config["job.autoscaler.metrics.window"] == "120s"


def test_the_cluster_shares_the_local_clusters_rules(example: Settings, objects: list[dict[str, Any]]) -> None:
    (deployment,) = [o for o in objects if o["kind"] == "FlinkDeployment"]
    config = deployment["spec"]["flinkConfiguration"]
    local = FlinkCluster(example).config()
    for key in k8s.MIRRORED_CLUSTER_KEYS:
        assert config[key] == k8s._text(local[key]), key
    assert config["execution.checkpointing.dir"] == "s3://aimass-state/inference/checkpoints"
    assert config["high-availability.type"] == "kubernetes"
    assert config["high-availability.storageDir"].startswith("s3://")
    assert deployment["spec"]["job"]["parallelism"] == example.job.parallelism


def test_every_aimass_variable_names_a_real_setting(objects: list[dict[str, Any]]) -> None:
    names = set(Settings().as_env())
    found = set(re.findall(r"\bAIMASS_[A-Z0-9_]+", json.dumps(objects)))
    assert found and not found - names, found - names
    (config_map,) = [o for o in objects if o["kind"] == "ConfigMap"]
    assert Settings.load(env=config_map["data"]).kafka.bootstrap.count(",") == 2


def test_the_gateway_probes_the_port_it_serves_health_on(objects: list[dict[str, Any]]) -> None:
    (gateway,) = [o for o in objects if o["kind"] == "Deployment"]
    container = gateway["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    health_port = int(env["AIMASS_GATEWAY_HEALTH_PORT"])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == health_port, probe
    (service,) = [o for o in objects if o["kind"] == "Service"]
    assert service["spec"]["selector"] == gateway["spec"]["selector"]["matchLabels"]
    assert container["command"][1:] == ["-m", "aimass", "gateway"]
    assert (PROJECT_ROOT / "aimass" / "__main__.py").is_file()


def test_the_image_paths_and_versions_are_the_images(objects: list[dict[str, Any]]) -> None:
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    assert compose["x-flink"]["image"] == k8s.IMAGE
    assert (PROJECT_ROOT / Path(k8s.JOB_FILE).relative_to("/opt/aimass")).is_file()
    flink = next(line.split("==")[1].strip() for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines()
                 if line.startswith("apache-flink=="))
    assert f"flink-s3-fs-hadoop-{flink}.jar" == k8s.S3_PLUGIN
    assert k8s.PYTHON_DRIVER_JAR.endswith(f"/lib/flink-python-{flink}.jar")  # moved from opt/ by the Dockerfile
    docker_config = yaml.safe_load((PROJECT_ROOT / "docker" / "flink" / "config.yaml").read_text())
    assert docker_config["python.executable"] == k8s.PYTHON


def test_no_secret_is_rendered() -> None:
    env = {**k8s.EXAMPLE_ENV, "AIMASS_GATEWAY_TOKEN": "tok-3f9a", "AIMASS_KAFKA_CLIENT_PROPERTIES":
           "security.protocol=SASL_SSL;sasl.mechanism=PLAIN;sasl.jaas.config=secret-jaas-7d1"}
    text = "".join(k8s.texts(Settings.load(env=env)).values())
    assert "tok-3f9a" not in text and "secret-jaas-7d1" not in text


def test_file_storage_is_refused_for_pods_that_share_no_folder() -> None:
    with pytest.raises(ValueError, match="AIMASS_STORAGE_URI=s3://"):
        k8s.render(Settings())
