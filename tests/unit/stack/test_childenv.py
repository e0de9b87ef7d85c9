"""Each process the stack starts gets an allow-list of the caller's environment: secrets in our
environment or settings stay out of ``/proc/<pid>/environ`` of the JVMs and the store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aimass.settings import Settings
from aimass.stack.childenv import child_env
from aimass.stack.flink import FlinkCluster
from aimass.stack.kafka import KafkaBroker
from aimass.stack.procs import ManagedProcess

SASL = "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required password=\"pw-5e1\";"
#: What a user's shell may hold, none of it any child's business.
CALLER = {
    "PATH": "/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "JAVA_HOME": "/opt/jdk",
    "GITHUB_TOKEN": "ghp-secret-0b7", "AIMASS_GATEWAY_TOKEN": "tok-secret-9c2",
    "AIMASS_KAFKA_CLIENT_PROPERTIES": f"security.protocol=SASL_SSL;{SASL}",
    "AWS_ACCESS_KEY_ID": "AKIA-key-4d", "AWS_SECRET_ACCESS_KEY": "aws-secret-77", "HTTPS_PROXY": "http://proxy:3128",
}
SECRETS = ("ghp-secret-0b7", "tok-secret-9c2", "pw-5e1", "aws-secret-77")


def test_base_variables_pass_and_everything_else_stays_behind() -> None:
    env = child_env("kafka", {"KAFKA_HEAP_OPTS": ""}, source=CALLER)
    assert env == {"PATH": "/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
                   "JAVA_HOME": "/opt/jdk", "KAFKA_HEAP_OPTS": ""}


def test_aws_variables_and_proxies_only_reach_processes_of_object_storage() -> None:
    assert "AWS_SECRET_ACCESS_KEY" not in child_env("flink", source=CALLER)
    env = child_env("flink", object_storage=True, source=CALLER)
    assert env["AWS_SECRET_ACCESS_KEY"] == "aws-secret-77" and env["HTTPS_PROXY"] == "http://proxy:3128"
    assert "AWS_SECRET_ACCESS_KEY" not in child_env("objectstore", object_storage=False, source=CALLER)


@pytest.fixture
def caller(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in CALLER.items():
        monkeypatch.setenv(key, value)


def secret_settings(tmp_path: Path, **extra: str) -> Settings:
    return Settings.load(env={**CALLER, "AIMASS_PATHS_STATE_DIR": str(tmp_path / "state"), **extra})


def test_the_cluster_gets_no_aimass_setting_and_the_client_gets_them_all(tmp_path: Path, caller: None) -> None:
    cluster = FlinkCluster(secret_settings(tmp_path))
    server, client = cluster.env(), cluster.env(client=True)
    assert not [key for key in server if key.startswith("AIMASS_")], server
    assert server["FLINK_CONF_DIR"] == str(cluster.conf_dir) and server["PYTHONPATH"]
    assert client["AIMASS_KAFKA_CLIENT_PROPERTIES"] == CALLER["AIMASS_KAFKA_CLIENT_PROPERTIES"]  # builds the job
    assert "GITHUB_TOKEN" not in client and "AWS_SECRET_ACCESS_KEY" not in client


def test_the_cluster_reads_aws_credentials_only_with_checkpoints_on_s3(tmp_path: Path, caller: None) -> None:
    s3 = secret_settings(tmp_path, AIMASS_STORAGE_URI="s3://bucket/state")
    assert FlinkCluster(s3).env()["AWS_SECRET_ACCESS_KEY"] == "aws-secret-77"
    assert "AWS_SECRET_ACCESS_KEY" not in FlinkCluster(s3).env(client=True)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[ManagedProcess]]:
    procs: list[ManagedProcess] = []
    yield procs
    for proc in procs:
        proc.stop(timeout_s=2)


def environ(pid: int) -> bytes:
    """``/proc/<pid>/environ`` once the process has exec'd its command (the capping wrapper first)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if b"sleep" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]:
            return Path(f"/proc/{pid}/environ").read_bytes()
        time.sleep(0.05)
    raise AssertionError("the child never exec'd sleep")


@pytest.fixture
def fake_java(tmp_path: Path) -> str:
    """A stand-in for the start scripts and java: it takes any arguments and becomes ``sleep``."""
    script = tmp_path / "fake-java"
    script.write_text("#!/bin/sh\nexec /bin/sleep 30\n")
    script.chmod(0o755)
    return str(script)


def test_a_taskmanager_started_with_secrets_around_holds_none(
    tmp_path: Path, caller: None, started: list[ManagedProcess], fake_java: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = FlinkCluster(secret_settings(tmp_path))
    monkeypatch.setattr(FlinkCluster, "script", lambda self, name: fake_java)
    started.append(cluster.taskmanager(0))
    seen = environ(cluster.start_taskmanager(0))  # as the stack starts it, through the .out capping wrapper
    assert b"FLINK_CONF_DIR=" in seen and b"JAVA_HOME=/opt/jdk" in seen
    for secret in SECRETS:
        assert secret.encode() not in seen, secret
    assert b"AIMASS_" not in seen


def test_the_broker_started_with_secrets_around_holds_none(
    tmp_path: Path, caller: None, started: list[ManagedProcess], fake_java: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = KafkaBroker(secret_settings(tmp_path))
    monkeypatch.setattr(KafkaBroker, "_java_argv", lambda self, main, *args: [fake_java])
    monkeypatch.setattr(KafkaBroker, "format_storage", lambda self, props: None)
    started.append(broker.process)
    seen = environ(broker.start())
    assert b"KAFKA_HEAP_OPTS=" in seen
    for secret in SECRETS:
        assert secret.encode() not in seen, secret
