"""Kubernetes manifests, rendered from the settings: the inference job as a ``FlinkDeployment``
of the Flink Kubernetes Operator (application mode, checkpoints and high availability on S3,
the operator's autoscaler configured from ``autoscale.*``), the gateway as a ``Deployment`` with
a ``Service`` and gRPC health probes, and the ``AIMASS_*`` settings they share as a ``ConfigMap``.

``aimass kubernetes --out DIR`` writes them; ``deploy/kubernetes/`` holds them rendered from
:data:`EXAMPLE_ENV` (``tests/unit/deploy/`` checks that the files are that rendering, and
validates them against Kubernetes' schemas and the operator's CRD). Secrets are referenced by
name, never rendered: see ``docs/DEPLOY.md`` for the ``kubectl create secret`` lines.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from aimass.settings import AutoscaleSettings, Settings
from aimass.stack import storage
from aimass.stack.flink import FlinkCluster

#: The image of docker/flink/Dockerfile (docker-compose.yml builds and tags it).
IMAGE = "aimass-flink:0.1.0"
#: ``spec.flinkVersion``: Flink 2.2 (the apache-flink pin), known to operator 1.13 and later.
FLINK_VERSION = "v2_2"
#: Where the image keeps the job, its Python and the flink-python jar (docker/flink/Dockerfile).
JOB_FILE = "/opt/aimass/flink_jobs/inference_job.py"
PYTHON = "/opt/venv/bin/python"
PYTHON_DRIVER_JAR = "local:///opt/flink/lib/flink-python-2.2.1.jar"
#: The S3 plugin of the image's Flink distribution, enabled by the image's entrypoint.
S3_PLUGIN = "flink-s3-fs-hadoop-2.2.1.jar"

#: Secrets the manifests refer to (created by the user, docs/DEPLOY.md).
S3_SECRET = "aimass-s3"  # noqa: S105 - a Secret's name
TLS_SECRET = "aimass-gateway-tls"  # noqa: S105
TOKEN_SECRET = "aimass-gateway-token"  # noqa: S105
CONFIG_MAP = "aimass-settings"
#: The service account the operator's Helm chart creates in each watched namespace.
SERVICE_ACCOUNT = "flink"

GATEWAY_PORT = 19051
GATEWAY_HEALTH_PORT = 19052
GATEWAY_METRICS_PORT = 19053
STATE_DIR = "/var/lib/aimass"

#: Settings every pod of the image runs with (paths inside the image; models arrive through
#: the control topic's blobs, not a shared folder).
CONTAINER_ENV = {
    "AIMASS_PATHS_STATE_DIR": STATE_DIR,
    "AIMASS_PATHS_MODELS_DIR": "/opt/aimass/models",
    "AIMASS_PATHS_SCHEMAS_DIR": "/opt/aimass/schemas",
    "AIMASS_ENGINE_MODEL_CACHE_DIR": f"{STATE_DIR}/model-cache",
    "AIMASS_JOB_SYNC_MODELS_DIR": "false",
}

#: The settings ``deploy/kubernetes/`` is rendered from: a three-broker Kafka cluster in the
#: ``kafka`` namespace, checkpoints on AWS S3, two TaskManager slots per pod.
EXAMPLE_ENV = {
    **CONTAINER_ENV,
    "AIMASS_KAFKA_BOOTSTRAP_SERVERS": "kafka-0.kafka.kafka:9092,kafka-1.kafka.kafka:9092,kafka-2.kafka.kafka:9092",
    "AIMASS_STORAGE_URI": "s3://aimass-state/inference",
    "AIMASS_JOB_PARALLELISM": "2",
    "AIMASS_AUTOSCALE_MIN_PARALLELISM": "1",
    "AIMASS_AUTOSCALE_MAX_PARALLELISM": "4",
}

#: Keys of the local cluster's configuration (aimass/stack/flink.py) a Kubernetes cluster shares.
MIRRORED_CLUSTER_KEYS = (
    "jobmanager.scheduler",
    "jobmanager.adaptive-scheduler.resource-stabilization-timeout",
    "taskmanager.numberOfTaskSlots",
    "pipeline.max-parallelism",
    "classloader.parent-first-patterns.additional",
    "web.cancel.enable",
    "web.submit.enable",
    # The REST API's own origin, not Flink's `*`: with the default host, what `kubectl port-forward`
    # serves the web UI at (in a pod Flink binds every interface; its Services stay ClusterIP).
    "web.access-control-allow-origin",
    "heartbeat.interval",
    "heartbeat.timeout",
    "metrics.fetcher.update-interval",
)

LABELS = {"app.kubernetes.io/name": "aimass", "app.kubernetes.io/part-of": "aimass"}


def autoscaler_config(scale: AutoscaleSettings) -> dict[str, str]:
    """``autoscale.*`` as the operator autoscaler's keys (operator 1.13+ names).

    Mapped: the busy-time band (scale up above ``scale_up_busy``, down below ``scale_down_busy``,
    aiming at their middle), the parallelism bounds, the cooldown (no new decision for that
    long after a rescale) and the evidence window (``sustain_samples`` x ``interval_s``). Not
    mapped, as the operator has no such rule: the lag and latency triggers and ``step`` (it
    sizes each vertex from its measured processing rate instead), ``add_taskmanagers`` (it asks
    Kubernetes for pods itself).
    """
    window = max(scale.interval_s * scale.sustain_samples, 60.0)  # the operator's floor is a minute
    return {
        "job.autoscaler.enabled": "true",
        "job.autoscaler.scaling.enabled": "true",
        "job.autoscaler.utilization.target": _number((scale.scale_up_busy + scale.scale_down_busy) / 2),
        "job.autoscaler.utilization.max": _number(scale.scale_up_busy),
        "job.autoscaler.utilization.min": _number(scale.scale_down_busy),
        "job.autoscaler.vertex.min-parallelism": str(scale.min_parallelism),
        "job.autoscaler.vertex.max-parallelism": str(scale.max_parallelism),
        "job.autoscaler.stabilization.interval": f"{round(scale.cooldown_s)}s",
        "job.autoscaler.metrics.window": f"{round(window)}s",
    }


def flink_configuration(settings: Settings) -> dict[str, str]:
    """``spec.flinkConfiguration``: the local cluster's shared keys, storage, HA, autoscaler."""
    # The local cluster's rules without its SSL: that would generate TLS files here, which no pod
    # has (Flink's SSL on Kubernetes comes from secrets the operator mounts: docs/SECURITY.md).
    local = FlinkCluster(dataclasses.replace(settings, flink=dataclasses.replace(settings.flink, ssl=False))).config()
    config = {key: _text(local[key]) for key in MIRRORED_CLUSTER_KEYS}
    config.update({
        "python.executable": PYTHON,
        "python.client.executable": PYTHON,
        "execution.checkpointing.dir": settings.checkpoint_uri,
        "execution.checkpointing.savepoint-dir": settings.savepoint_uri,
        "high-availability.type": "kubernetes",
        "high-availability.storageDir": f"{settings.storage.uri.rstrip('/')}/ha",
        "kubernetes.operator.job.upgrade.last-state-fallback.enabled": "true",
        **storage.flink_config(settings.storage),
        **autoscaler_config(settings.autoscale),
    })
    return dict(sorted(config.items()))


def flink_deployment(settings: Settings) -> dict[str, Any]:
    """The ``FlinkDeployment`` of the inference job (application mode)."""
    f, job = settings.flink, settings.job
    main_container = {
        "name": "flink-main-container",
        "envFrom": [{"configMapRef": {"name": CONFIG_MAP}}, {"secretRef": {"name": S3_SECRET}}],
        "env": [{"name": "ENABLE_BUILT_IN_PLUGINS", "value": S3_PLUGIN}],
        "volumeMounts": [{"name": "aimass-state", "mountPath": STATE_DIR}],
    }
    return {
        "apiVersion": "flink.apache.org/v1beta1",
        "kind": "FlinkDeployment",
        "metadata": {"name": job.name, "labels": {**LABELS, "app.kubernetes.io/component": "inference-job"}},
        "spec": {
            "image": IMAGE,
            "imagePullPolicy": "IfNotPresent",
            "flinkVersion": FLINK_VERSION,
            "mode": "native",
            "serviceAccount": SERVICE_ACCOUNT,
            "flinkConfiguration": flink_configuration(settings),
            "podTemplate": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "pod-template"},
                "spec": {
                    "containers": [main_container],
                    "volumes": [{"name": "aimass-state", "emptyDir": {}}],
                },
            },
            "jobManager": {"replicas": 1, "resource": {"memory": f.jobmanager_memory, "cpu": 1.0}},
            "taskManager": {"resource": {"memory": f.taskmanager_memory, "cpu": float(f.slots)}},
            "job": {
                "jarURI": PYTHON_DRIVER_JAR,
                "entryClass": "org.apache.flink.client.python.PythonDriver",
                "args": ["-py", JOB_FILE, "-pyclientexec", PYTHON, "-pyexec", PYTHON],
                "parallelism": job.parallelism,
                "upgradeMode": "last-state",
                "state": "running",
            },
        },
    }


def gateway(settings: Settings, replicas: int = 2) -> list[dict[str, Any]]:
    """The gateway's ``Deployment`` (TLS, token, health on a plaintext probe port) and ``Service``."""
    labels = {**LABELS, "app.kubernetes.io/component": "gateway"}
    probe = {"grpc": {"port": GATEWAY_HEALTH_PORT}}
    container = {
        "name": "gateway",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": [PYTHON, "-m", "aimass", "gateway"],
        "envFrom": [{"configMapRef": {"name": CONFIG_MAP}}],
        "env": [
            {"name": "AIMASS_GATEWAY_HOST", "value": "0.0.0.0"},  # noqa: S104 - a pod's own address
            {"name": "AIMASS_GATEWAY_PORT", "value": str(GATEWAY_PORT)},
            {"name": "AIMASS_GATEWAY_HEALTH_PORT", "value": str(GATEWAY_HEALTH_PORT)},
            {"name": "AIMASS_GATEWAY_METRICS_PORT", "value": str(GATEWAY_METRICS_PORT)},
            {"name": "AIMASS_GATEWAY_TLS_CERT", "value": "/etc/aimass/tls/tls.crt"},
            {"name": "AIMASS_GATEWAY_TLS_KEY", "value": "/etc/aimass/tls/tls.key"},
            # Tenants and admins, one a line (docs/SECURITY.md): a file, not a variable.
            {"name": "AIMASS_GATEWAY_TOKENS_FILE", "value": "/etc/aimass/tokens/tokens"},
        ],
        "ports": [{"name": "grpc", "containerPort": GATEWAY_PORT},
                  {"name": "health", "containerPort": GATEWAY_HEALTH_PORT},
                  {"name": "metrics", "containerPort": GATEWAY_METRICS_PORT}],
        # NOT_SERVING until the results topic is replayed: readiness keeps traffic away until
        # then; the start-up probe gives the replay 10 minutes before liveness may restart it.
        "startupProbe": {**probe, "periodSeconds": 5, "failureThreshold": 120},
        "readinessProbe": {"grpc": {"port": GATEWAY_HEALTH_PORT, "service": "aimass.v1.Inference"},
                           "periodSeconds": 5},
        "livenessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 6},
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "tls", "mountPath": "/etc/aimass/tls", "readOnly": True},
                         {"name": "tokens", "mountPath": "/etc/aimass/tokens", "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - the pod's own emptyDir
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "aimass-gateway", "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": {
                    "prometheus.io/scrape": "true", "prometheus.io/port": str(GATEWAY_METRICS_PORT),
                    "prometheus.io/path": "/metrics"}},
                "spec": {
                    # fsGroup: the secret files are the pod group's, 0440 (never others').
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 9999, "runAsGroup": 9999,
                                        "fsGroup": 9999},
                    "containers": [container],
                    "volumes": [{"name": "tls", "secret": {"secretName": TLS_SECRET}},
                                {"name": "tokens", "secret": {"secretName": TOKEN_SECRET, "defaultMode": 0o440}},
                                {"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "aimass-gateway", "labels": labels},
        "spec": {"selector": labels, "ports": [{"name": "grpc", "port": GATEWAY_PORT, "targetPort": "grpc"}]},
    }
    return [deployment, service]


def config_map(settings: Settings) -> dict[str, Any]:
    """The ``AIMASS_*`` settings the pods share: those that differ from the defaults, and the
    image's paths (secrets never: the gateway token and S3 keys come from Secrets)."""
    defaults = Settings().as_env()
    secret = {"AIMASS_GATEWAY_TOKEN", "AIMASS_KAFKA_CLIENT_PROPERTIES"}  # and no token file path either
    data = {key: value for key, value in settings.as_env().items()
            if key not in secret and (value != defaults[key] or key in CONTAINER_ENV)}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIG_MAP, "labels": LABELS},
        "data": dict(sorted(data.items())),
    }


def render(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """File name -> the objects it holds."""
    if not settings.storage.is_s3:
        raise ValueError("Kubernetes pods share no folder: set AIMASS_STORAGE_URI=s3://bucket/prefix")
    return {
        "settings.yaml": [config_map(settings)],
        "inference-job.yaml": [flink_deployment(settings)],
        "gateway.yaml": gateway(settings),
    }


def kustomization(files: list[str]) -> dict[str, Any]:
    """``kustomization.yaml``: ``kubectl apply -k`` takes the folder whole."""
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": files}


HEADER = ("# Rendered by `aimass kubernetes` from aimass/deploy/kubernetes.py; do not edit by hand.\n"
          "# The example: aimass kubernetes --example --out deploy/kubernetes; yours: docs/DEPLOY.md.\n")


def texts(settings: Settings) -> dict[str, str]:
    """File name -> its YAML text, the kustomization included."""
    rendered = render(settings)
    out = {name: HEADER + yaml.safe_dump_all(docs, sort_keys=False) for name, docs in rendered.items()}
    out["kustomization.yaml"] = HEADER + yaml.safe_dump(kustomization(list(rendered)), sort_keys=False)
    return out


def write(settings: Settings, out_dir: Path) -> list[Path]:
    """Write the manifests into ``out_dir``; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in texts(settings).items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _number(value: float) -> str:
    return f"{value:.4g}"


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
