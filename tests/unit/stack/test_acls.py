"""Kafka ACLs of the local stack (``kafka.acls``): the broker authorizes, and the rule of who may
do what gives the client no way to write a result (the integration test runs it on a broker)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from aimass.settings import Settings, SettingsError
from aimass.stack.acls import CLIENT_USER, JOB_USER, bindings
from aimass.stack.kafka import KafkaBroker


def _settings(tmp_path: Path, **extra: str) -> Settings:
    return Settings.load(env={"AIMASS_PATHS_STATE_DIR": str(tmp_path), "AIMASS_KAFKA_SECURE_PORT": "19094",
                              "AIMASS_KAFKA_ACLS": "true", **extra})


def test_acls_need_the_secure_listener() -> None:
    with pytest.raises(SettingsError, match="AIMASS_KAFKA_SECURE_PORT"):
        Settings.load(env={"AIMASS_KAFKA_ACLS": "true"})


def test_the_broker_authorizes_and_knows_each_user(tmp_path: Path) -> None:
    kafka = KafkaBroker(_settings(tmp_path))
    path = kafka.write_config()
    props = dict(line.split("=", 1) for line in path.read_text().splitlines())
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:ANONYMOUS;User:aimass"
    jaas = props["listener.name.sasl_ssl.plain.sasl.jaas.config"]
    for user in ("aimass", JOB_USER, CLIENT_USER):
        assert f'user_{user}="{kafka.password(user)}"' in jaas
        assert stat.S_IMODE((kafka.tls_dir / f"{user}.password").stat().st_mode) == 0o600
    assert len({kafka.password(u) for u in ("aimass", JOB_USER, CLIENT_USER)}) == 3
    assert f'username="{CLIENT_USER}"' in kafka.secure_client_properties(CLIENT_USER)
    assert "authorizer.class.name" not in KafkaBroker(Settings.load(env={
        "AIMASS_PATHS_STATE_DIR": str(tmp_path), "AIMASS_KAFKA_SECURE_PORT": "19094"})).properties()


def test_only_the_job_writes_results(tmp_path: Path) -> None:
    settings = _settings(tmp_path, AIMASS_KAFKA_RESULTS_TOPIC="r", AIMASS_JOB_TRANSACTIONAL_ID_PREFIX="tx")
    grants = bindings(settings)
    writes = {user: {name for op, kind, name, _ in g if (op, kind) == ("WRITE", "TOPIC")} for user, g in grants.items()}
    assert "r" in writes[JOB_USER] and writes[CLIENT_USER] == {settings.kafka.requests_topic}
    reads = {name for op, kind, name, _ in grants[CLIENT_USER] if op == "READ"}
    assert settings.kafka.requests_topic not in reads and "r" in reads
    assert ("WRITE", "TRANSACTIONAL_ID", "tx", "PREFIXED") in grants[JOB_USER]
    assert not any(kind == "TRANSACTIONAL_ID" for _, kind, _, _ in grants[CLIENT_USER])
