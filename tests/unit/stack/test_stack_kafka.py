"""The local broker's configuration: the optional SASL_SSL listener and its generated TLS files."""

from __future__ import annotations

import dataclasses
import shutil
import ssl
import stat
import subprocess
from pathlib import Path

import pytest

from aimass.kafka_config import python_client_config
from aimass.settings import Settings
from aimass.stack import kafka as stack_kafka
from aimass.stack.kafka import KafkaBroker
from aimass.stack.procs import StackError


def broker(tmp_path: Path, secure_port: int) -> KafkaBroker:
    env = {"AIMASS_PATHS_STATE_DIR": str(tmp_path), "AIMASS_KAFKA_SECURE_PORT": str(secure_port)}
    return KafkaBroker(Settings.load(env=env))


def server_properties(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def test_no_secure_listener_by_default(tmp_path: Path) -> None:
    kafka = broker(tmp_path, 0)
    props = server_properties(kafka.write_config())
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert "SASL_SSL" not in props["listener.security.protocol.map"]
    assert not kafka.tls_dir.exists()
    with pytest.raises(StackError, match="AIMASS_KAFKA_SECURE_PORT"):
        kafka.secure_client_properties()


def test_secure_listener_with_generated_certificate_and_password(tmp_path: Path) -> None:
    kafka = broker(tmp_path, 19094)
    path = kafka.write_config()
    props = server_properties(path)
    assert props["listeners"].split(",") == [
        "PLAINTEXT://127.0.0.1:19092", "SASL_SSL://127.0.0.1:19094", "CONTROLLER://127.0.0.1:19093",
    ]
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092,SASL_SSL://127.0.0.1:19094"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["listener.name.sasl_ssl.sasl.enabled.mechanisms"] == "PLAIN"
    assert props["listener.name.sasl_ssl.ssl.keystore.type"] == "PEM"
    tls = kafka.tls_dir
    password = (tls / "aimass.password").read_text().strip()
    assert f'user_aimass="{password}"' in props["listener.name.sasl_ssl.plain.sasl.jaas.config"]
    for secret in (path, tls / "aimass.password", tls / "broker.pem", tls / "ca.key", tls / "broker.key"):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    keystore = (tls / "broker.pem").read_text()
    assert keystore.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    assert keystore.count("BEGIN CERTIFICATE") == 2  # broker certificate, then the CA

    # The broker certificate chains to the CA and names 127.0.0.1 and localhost.
    context = ssl.create_default_context(cafile=str(tls / "ca.pem"))
    context.load_cert_chain(str(tls / "broker.pem"))
    text = subprocess.run(["openssl", "x509", "-in", str(tls / "broker.crt"), "-noout", "-ext", "subjectAltName"],
                          capture_output=True, text=True, check=True).stdout
    assert "IP Address:127.0.0.1" in text and "DNS:localhost" in text
    verified = subprocess.run(["openssl", "verify", "-CAfile", str(tls / "ca.pem"), "-purpose", "sslserver",
                               str(tls / "broker.crt")], capture_output=True, text=True, check=False)
    assert verified.returncode == 0, verified.stderr

    # Generated once: a second start keeps certificate and password.
    kafka.write_config()
    assert (tls / "aimass.password").read_text().strip() == password

    client = dataclasses.replace(kafka.settings.kafka, port=19094, client_properties=kafka.secure_client_properties())
    assert python_client_config(client) == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_plain_username": "aimass",
        "sasl_plain_password": password, "ssl_check_hostname": True, "ssl_cafile": str(tls / "ca.pem"),
    }


def test_missing_openssl_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = shutil.which
    monkeypatch.setattr(stack_kafka.shutil, "which", lambda name: None if name == "openssl" else real_which(name))
    with pytest.raises(StackError, match="apt-get install openssl"):
        broker(tmp_path, 19094).write_config()


def test_with_the_secure_listener_off_loopback_plaintext_and_controller_stay_on_loopback(tmp_path: Path) -> None:
    env = {"AIMASS_PATHS_STATE_DIR": str(tmp_path), "AIMASS_KAFKA_SECURE_PORT": "19094",
           "AIMASS_KAFKA_HOST": "10.20.30.40"}
    kafka = KafkaBroker(Settings.load(env=env))
    props = kafka.properties()
    assert props["listeners"].split(",") == [
        "PLAINTEXT://127.0.0.1:19092", "SASL_SSL://10.20.30.40:19094", "CONTROLLER://127.0.0.1:19093",
    ]
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092,SASL_SSL://10.20.30.40:19094"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert kafka.settings.kafka.bootstrap == "127.0.0.1:19092"  # aimass's own tools: plaintext, on loopback
    assert kafka.secure_bootstrap == "10.20.30.40:19094"


def test_without_the_secure_listener_every_listener_is_on_the_host(tmp_path: Path) -> None:
    env = {"AIMASS_PATHS_STATE_DIR": str(tmp_path), "AIMASS_KAFKA_HOST": "10.20.30.40"}
    kafka = KafkaBroker(Settings.load(env=env))
    assert kafka.properties()["listeners"] == "PLAINTEXT://10.20.30.40:19092,CONTROLLER://10.20.30.40:19093"


def test_a_client_of_the_secure_listener_elsewhere_keeps_its_address(tmp_path: Path) -> None:
    client = Settings.load(env={"AIMASS_KAFKA_HOST": "10.20.30.40", "AIMASS_KAFKA_PORT": "19094",
                                "AIMASS_KAFKA_SECURE_PORT": "19094"})
    assert client.kafka.bootstrap == "10.20.30.40:19094"
