"""docker-compose.yml and docker/flink/: the container stack says what the local stack says.

Static checks (no Docker engine): the files are parsed and compared with aimass/settings.py,
the local stack's broker and cluster configuration (aimass/stack/), requirements.txt and pom.xml,
so that a changed port, topic, version or broker setting cannot drift between the two stacks.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from aimass.settings import PROJECT_ROOT, FlinkSettings, JobSettings, KafkaSettings, Settings
from aimass.stack.flink import FlinkCluster
from aimass.stack.kafka import KafkaBroker

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
DOCKERFILE = PROJECT_ROOT / "docker" / "flink" / "Dockerfile"
FLINK_CONFIG = PROJECT_ROOT / "docker" / "flink" / "config.yaml"

ROLE_SERVICES = ("kafka", "jobmanager", "taskmanager", "job-submitter", "gateway")
HEALTH_CHECKED = ("kafka", "jobmanager")
TOPIC_FIELDS = ("requests_topic", "results_topic", "dead_letter_topic")

# Broker properties that differ in a container by design: listeners and addresses (a host
# listener plus an in-network one) and the data directory (a named volume).
CONTAINER_ONLY_BROKER_KEYS = {
    "listeners",
    "advertised.listeners",
    "listener.security.protocol.map",
    "inter.broker.listener.name",
    "controller.quorum.voters",
    "log.dirs",
}

# Cluster settings the containers must share with the local stack (aimass/stack/flink.py);
# addresses, ports other than REST, paths and the Python executable differ by design.
MIRRORED_FLINK_KEYS = (
    "jobmanager.scheduler",
    "jobmanager.adaptive-scheduler.resource-stabilization-timeout",
    "jobmanager.memory.process.size",
    "taskmanager.numberOfTaskSlots",
    "taskmanager.memory.process.size",
    "rest.port",
    "parallelism.default",
    "pipeline.max-parallelism",
    "classloader.parent-first-patterns.additional",
    "web.cancel.enable",
    "web.submit.enable",
    "heartbeat.timeout",
)


# --- parsing helpers ---------------------------------------------------------------------------


def _env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as strings, from either the mapping or the list form."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {str(key): "" if value is None else str(value) for key, value in raw.items()}


def _command(service: dict[str, Any]) -> str:
    """A service's command as one string, with compose's ``$$`` escapes undone."""
    command = service.get("command", "")
    text = " ".join(command) if isinstance(command, list) else str(command)
    return text.replace("$$", "$")


def _published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host ip, published port, container port) of each published port of a service."""
    out = []
    for spec in service.get("ports", []):
        if isinstance(spec, dict):
            out.append((str(spec.get("host_ip", "")), int(spec["published"]), int(spec["target"])))
            continue
        parts = str(spec).split("/")[0].split(":")
        host_ip = parts[0] if len(parts) == 3 else ""
        out.append((host_ip, int(parts[-2]), int(parts[-1])))
    return out


def _mounts(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Container path -> (source, read-only) of each short-syntax volume of a service."""
    out = {}
    for spec in service.get("volumes", []):
        source, target, *mode = str(spec).split(":")
        out[target] = (source, "ro" in mode)
    return out


def _listeners(value: str) -> dict[str, str]:
    """``NAME://host:port,...`` -> {name: "host:port"}."""
    return dict(item.split("://", 1) for item in value.split(","))


def _image_tag(image: str) -> str:
    """The tag of an image reference ("" when it has none); a registry's port is not a tag."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, args = line.strip().partition(" ")
            out.append((instruction.upper(), args.strip()))
    return out


def _dockerfile_assignments(kind: str) -> dict[str, str]:
    """Values set by every ``ARG``/``ENV`` line of the Dockerfile (``NAME=value`` form)."""
    out = {}
    for instruction, args in _dockerfile_instructions():
        if instruction == kind:
            for word in shlex.split(args):
                if "=" in word:
                    key, value = word.split("=", 1)
                    out[key] = value
    return out


def _base_images() -> list[str]:
    """Images the Dockerfile builds FROM (not references to its own earlier stages)."""
    stages: set[str] = set()
    images = []
    for instruction, args in _dockerfile_instructions():
        if instruction == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            if words[0] not in stages:
                images.append(words[0])
            if len(words) == 3 and words[1].upper() == "AS":
                stages.add(words[2])
    return images


def _pinned_requirement(name: str) -> str:
    for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines():
        match = re.fullmatch(rf"{re.escape(name)}==(\S+)", line.split("#", 1)[0].strip())
        if match:
            return match.group(1)
    raise AssertionError(f"{name} is not pinned with == in requirements.txt")


def _pom_property(name: str) -> str:
    root = ET.parse(PROJECT_ROOT / "pom.xml").getroot()
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    element = root.find(f"m:properties/m:{name}", namespace)
    assert element is not None and element.text, f"pom.xml has no <{name}> property"
    return element.text.strip()


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def flink_config() -> dict[str, Any]:
    return yaml.safe_load(FLINK_CONFIG.read_text())


@pytest.fixture(scope="module")
def kafka_env(services: dict[str, dict[str, Any]]) -> dict[str, str]:
    return _env(services["kafka"])


@pytest.fixture(scope="module")
def venv_python() -> str:
    return f"{_dockerfile_assignments('ENV')['VIRTUAL_ENV']}/bin/python"


# --- the compose file -------------------------------------------------------------------------


def test_compose_file_parses_with_the_role_named_services(services: dict[str, dict[str, Any]]) -> None:
    assert set(ROLE_SERVICES) <= set(services)


def test_every_image_has_a_pinned_tag(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert "image" in service, f"{name}: no image name, so a build would be untagged"
        tag = _image_tag(service["image"])
        assert tag, f"{name}: image {service['image']} has no tag"
        assert tag != "latest", f"{name}: image {service['image']} floats on latest"


def test_images_built_here_are_tagged_with_the_project_version(services: dict[str, dict[str, Any]]) -> None:
    version = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["version"]
    built = [service for service in services.values() if "build" in service]
    assert built
    for service in built:
        assert _image_tag(service["image"]) == version


def test_kafka_and_the_jobmanager_have_health_checks(services: dict[str, dict[str, Any]]) -> None:
    for name in HEALTH_CHECKED:
        check = services[name].get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no health check"
    kafka_check = " ".join(services["kafka"]["healthcheck"]["test"])
    assert "kafka-broker-api-versions.sh" in kafka_check or "kafka-topics.sh" in kafka_check
    jobmanager_check = " ".join(services["jobmanager"]["healthcheck"]["test"])
    assert f":{FlinkSettings().rest_port}/overview" in jobmanager_check


def test_dependents_wait_for_health_rather_than_start(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on without conditions"
        for dependency, rule in depends_on.items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            condition = rule.get("condition")
            if dependency in HEALTH_CHECKED:
                assert condition == "service_healthy", f"{name} -> {dependency}: {condition}"
            elif services[dependency].get("restart") == "no":
                assert condition == "service_completed_successfully", f"{name} -> {dependency}: {condition}"
    assert services["taskmanager"]["depends_on"]["jobmanager"]["condition"] == "service_healthy"
    assert {"kafka", "jobmanager"} <= set(services["job-submitter"]["depends_on"])


def test_the_gateway_serves_where_the_settings_say_and_is_health_checked(services: dict[str, dict[str, Any]]) -> None:
    from aimass.settings import GatewaySettings

    gateway = services["gateway"]
    env = _env(gateway)
    settings = Settings.load(env=env)
    assert [(p, t) for _, p, t in _published(gateway)] == [(GatewaySettings().port, settings.gateway.port)]
    assert _command(gateway).split()[-3:] == ["-m", "aimass", "gateway"]
    assert f"localhost:{settings.gateway.health_port}" in " ".join(gateway["healthcheck"]["test"])
    assert settings.kafka.host == "kafka" and gateway["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_published_ports_are_the_settings_defaults(
    services: dict[str, dict[str, Any]], kafka_env: dict[str, str], flink_config: dict[str, Any]
) -> None:
    kafka, flink = KafkaSettings(), FlinkSettings()
    assert [(p, t) for _, p, t in _published(services["kafka"])] == [(kafka.port, kafka.port)]
    assert [(p, t) for _, p, t in _published(services["jobmanager"])] == [(flink.rest_port, flink.rest_port)]
    assert int(flink_config["rest.port"]) == flink.rest_port
    # A host client with default settings bootstraps to an address the broker advertises.
    assert kafka.bootstrap in _listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"]).values()


def test_only_loopback_is_published_as_on_the_local_stack(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for host_ip, published, _ in _published(service):
            assert host_ip == "127.0.0.1", f"{name}: port {published} is published on all interfaces"


def test_every_aimass_variable_names_a_real_setting(services: dict[str, dict[str, Any]]) -> None:
    valid = set(Settings().as_env())
    used = set(re.findall(r"AIMASS_[A-Z0-9_]+", COMPOSE_FILE.read_text()))
    assert used, "compose passes no AIMASS_* settings"
    assert used <= valid, f"not settings: {sorted(used - valid)}"
    for service in services.values():
        env = {key: value for key, value in _env(service).items() if key.startswith("AIMASS_")}
        if env:
            Settings.load(env=env)  # every value parses and the combination validates


def test_containers_reach_kafka_on_its_advertised_internal_listener(
    services: dict[str, dict[str, Any]], kafka_env: dict[str, str]
) -> None:
    advertised = _listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    bound_ports = {address.rsplit(":", 1)[1] for address in _listeners(kafka_env["KAFKA_LISTENERS"]).values()}
    clients = [name for name, service in services.items() if "AIMASS_KAFKA_HOST" in _env(service)]
    assert {"kafka-init", "job-submitter"} <= set(clients)
    for name in clients:
        bootstrap = Settings.load(env=_env(services[name])).kafka.bootstrap
        assert bootstrap in advertised.values(), f"{name}: {bootstrap} is not advertised"
        assert bootstrap != KafkaSettings().bootstrap, f"{name} would use the host listener"
        assert bootstrap.rsplit(":", 1)[1] in bound_ports


def test_topics_are_the_settings_defaults(services: dict[str, dict[str, Any]]) -> None:
    defaults = KafkaSettings()
    for name, service in services.items():
        kafka = Settings.load(env=_env(service)).kafka
        for field in TOPIC_FIELDS:
            assert getattr(kafka, field) == getattr(defaults, field), f"{name}: {field}"
        assert kafka.partitions == defaults.partitions
    init = _command(services["kafka-init"])
    for field in TOPIC_FIELDS:
        assert f"AIMASS_KAFKA_{field.upper()}" in init, f"kafka-init does not create {field}"
    # Results are keyed by request id: compacted, as aimass/stack/kafka.py creates them.
    results = re.search(r'create "\$AIMASS_KAFKA_RESULTS_TOPIC"([^\n]*)', init)
    assert results and "cleanup.policy=compact,delete" in results.group(1)


def test_broker_mirrors_the_local_stack_broker_config(tmp_path: Path, kafka_env: dict[str, str]) -> None:
    props_file = KafkaBroker(Settings.load(env={"AIMASS_PATHS_STATE_DIR": str(tmp_path)})).write_config()
    local = dict(line.split("=", 1) for line in props_file.read_text().splitlines() if "=" in line)
    for key, value in local.items():
        if key in CONTAINER_ONLY_BROKER_KEYS:
            continue
        variable = "KAFKA_" + key.replace("_", "__").replace("-", "___").replace(".", "_").upper()
        assert kafka_env.get(variable) == value, f"{variable} should be {value} as {key} on the local stack"
    assert kafka_env["KAFKA_TRANSACTION_MAX_TIMEOUT_MS"] == str(KafkaSettings().transaction_max_timeout_ms)
    assert kafka_env["KAFKA_CONTROLLER_QUORUM_VOTERS"].endswith(f":{KafkaSettings().controller_port}")
    assert int(kafka_env["KAFKA_TRANSACTION_MAX_TIMEOUT_MS"]) >= JobSettings().transaction_timeout_ms


def test_flink_config_mirrors_the_local_stack_cluster_config(flink_config: dict[str, Any]) -> None:
    local = FlinkCluster(Settings()).config()
    for key in MIRRORED_FLINK_KEYS:
        assert str(flink_config[key]).lower() == str(local[key]).lower(), key


def test_flink_answers_browsers_of_the_published_web_ui_only(
    services: dict[str, dict[str, Any]], flink_config: dict[str, Any]
) -> None:
    origin = flink_config["web.access-control-allow-origin"]
    published = set(services["jobmanager"]["ports"])
    assert origin == f"http://127.0.0.1:{flink_config['rest.port']}", origin
    assert f"127.0.0.1:{flink_config['rest.port']}:{flink_config['rest.port']}" in published
    for name in ("jobmanager", "taskmanager"):  # RPC and blob: never published
        assert all(p.endswith(f":{flink_config['rest.port']}") for p in services[name].get("ports", [])), name


def test_flink_addresses_name_the_jobmanager_service(
    services: dict[str, dict[str, Any]], flink_config: dict[str, Any]
) -> None:
    assert flink_config["jobmanager.rpc.address"] == "jobmanager"
    assert flink_config["rest.address"] == "jobmanager"
    for name in ("jobmanager", "taskmanager", "job-submitter"):
        assert _env(services[name])["JOB_MANAGER_RPC_ADDRESS"] == "jobmanager"
        assert Settings.load(env=_env(services[name])).flink.host == "jobmanager"


def test_checkpoints_and_savepoints_live_on_a_named_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]], flink_config: dict[str, Any]
) -> None:
    state_dir = Settings.load(env=_env(services["job-submitter"])).paths.state_dir
    # The job sets the same checkpoint dir from its settings (flink_jobs/inference_job.py).
    assert flink_config["execution.checkpointing.dir"] == (state_dir / "checkpoints").as_uri()
    assert flink_config["execution.checkpointing.savepoint-dir"] == (state_dir / "savepoints").as_uri()
    for name in ("jobmanager", "taskmanager"):
        source, read_only = _mounts(services[name])[str(state_dir)]
        assert source in (compose.get("volumes") or {}), f"{name}: {source} is not a named volume"
        assert not read_only


def test_models_dir_is_bind_mounted_where_the_settings_point(services: dict[str, dict[str, Any]]) -> None:
    for name in ("taskmanager", "job-submitter"):
        models_dir = Settings.load(env=_env(services[name])).paths.models_dir
        source, read_only = _mounts(services[name])[str(models_dir)]
        assert source.startswith("./"), f"{name}: models are not bind-mounted from the host"
        assert read_only == (name == "taskmanager")


def test_job_submitter_builds_demo_models_then_runs_the_inference_job(
    services: dict[str, dict[str, Any]], venv_python: str
) -> None:
    command = _command(services["job-submitter"])
    match = re.search(r"flink run -d -py (\S+)", command)
    assert match, command
    project_root = _dockerfile_assignments("ENV")["PYTHONPATH"]
    script = Path(match.group(1))
    assert script.is_relative_to(project_root)
    assert (PROJECT_ROOT / script.relative_to(project_root)).is_file()
    assert script.relative_to(project_root).as_posix() == "flink_jobs/inference_job.py"
    assert command.index("python -m aimass.tools.demo") < match.start()
    assert f"-pyexec {venv_python}" in command and f"-pyclientexec {venv_python}" in command


def test_no_service_for_a_component_that_is_not_built(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        build = service.get("build")
        if build:
            assert (PROJECT_ROOT / build["context"] / build["dockerfile"]).is_file(), name
    if "gateway" in services:
        assert importlib.util.find_spec("aimass.gateway") is not None, "a gateway service without a gateway"


# --- the Flink image --------------------------------------------------------------------------


def test_dockerfile_flink_tag_matches_the_pinned_pyflink() -> None:
    images = [image for image in _base_images() if not image.startswith("maven:")]  # the Java build stage
    assert images
    expected = f"flink:{_pinned_requirement('apache-flink')}-scala_2.12-java17"
    assert images == [expected] * len(images)
    assert _pinned_requirement("apache-flink-libraries") == _pinned_requirement("apache-flink")


def test_dockerfile_connector_matches_pom_and_flink_version() -> None:
    version = _dockerfile_assignments("ARG")["FLINK_KAFKA_CONNECTOR_VERSION"]
    assert version == _pom_property("flink.kafka.connector.version")
    flink_minor = ".".join(_pinned_requirement("apache-flink").split(".")[:2])
    assert version.endswith(f"-{flink_minor}"), f"connector {version} is not built for Flink {flink_minor}"


def test_dockerfile_installs_python_311_requirements_and_flink_python_in_lib() -> None:
    instructions = _dockerfile_instructions()
    runs = " ".join(args for instruction, args in instructions if instruction == "RUN")
    assert "--enable-shared" in runs  # thread mode's pemja loads libpython into the JVM
    assert _dockerfile_assignments("ARG")["PYTHON_VERSION"].startswith("3.11.")
    assert re.search(r"pip install .*--require-hashes .*-r \S*requirements\.lock", runs)  # tests/unit/test_lock.py
    assert re.search(r"mv /opt/flink/opt/flink-python-\S*\.jar /opt/flink/lib/", runs)
    copies = [args for instruction, args in instructions if instruction == "COPY" and "--from" not in args]
    for args in copies:
        for source in [w for w in args.split() if not w.startswith("--")][:-1]:
            assert (PROJECT_ROOT / source).exists(), f"COPY source {source} does not exist"


def test_the_image_carries_the_jobs_java_operators_where_the_job_looks() -> None:
    # flink_jobs/inference_job.py's ops_jar(): <paths.jars_dir>/job/aimass-flink-ops.jar
    expected = Settings.load(env={}).paths.jars_dir.relative_to(PROJECT_ROOT) / "job" / "aimass-flink-ops.jar"
    instructions = _dockerfile_instructions()
    builds = [args for instruction, args in instructions if instruction == "RUN" and "mvn" in args]
    assert builds and "package" in builds[0]
    copies = [args.split() for instruction, args in instructions
              if instruction == "COPY" and "--from=java-build" in args]
    assert any(words[-1] == f"/opt/aimass/{expected}" for words in copies), copies
    ignore = (PROJECT_ROOT / "docker" / "flink" / "Dockerfile.dockerignore").read_text()
    assert "!java/src/" in ignore and "!java/pom.xml" in ignore


def test_python_executables_are_the_image_venv(flink_config: dict[str, Any], venv_python: str) -> None:
    assert flink_config["python.executable"] == venv_python
    assert flink_config["python.client.executable"] == venv_python
    env = _dockerfile_assignments("ENV")
    assert env["PATH"].startswith(f"{env['VIRTUAL_ENV']}/bin:")
    assert env["PYTHONPATH"]
