"""Flink with SSL and mutual authentication (AIMASS_FLINK_SSL) on a real stack of its own: it
comes up, ``aimass`` lists and submits jobs through the client certificate, and what comes
without one is refused: a REST call, plain HTTP, a connection to the RPC or blob port."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from aimass.settings import Settings
from aimass.stack import jobs
from aimass.stack.flink_tls import FlinkTls
from aimass.stack.isolated import Ports, isolated_env
from aimass.stack.local import LocalStack
from tests.stacks import running_stack

pytestmark = pytest.mark.integration

OFFSET = int(os.environ.get("AIMASS_TEST_PORT_OFFSET", "0"))
#: A block of its own, 50 off the others' so that no offset by hundreds meets one of them.
SSL_TEST_PORTS = Ports(kafka=29042, rest=18031, flink=25050)
ENV = isolated_env("ssl-test", SSL_TEST_PORTS, OFFSET, {
    "AIMASS_FLINK_SSL": "true",
    "AIMASS_KAFKA_SECURE_PORT": "0",
    "AIMASS_FLINK_SLOTS": "1",
    "AIMASS_JOB_NAME": "aimass-inference-ssl",
    "AIMASS_JOB_TRANSACTIONAL_ID_PREFIX": f"aimass-ssl-test{OFFSET}",
    "AIMASS_JOB_CONSUMER_GROUP": f"aimass-ssl-test{OFFSET}",
})


@pytest.fixture(scope="module")
def ssl_settings() -> Settings:
    return Settings.load(env=ENV)


@pytest.fixture(scope="module")
def ssl_stack(ssl_settings: Settings) -> Iterator[LocalStack]:
    with running_stack(ssl_settings, "ssl-stack") as stack:
        yield stack


def test_the_stack_comes_up_over_https_and_aimass_lists_and_submits_jobs(
    ssl_stack: LocalStack, ssl_settings: Settings
) -> None:
    assert ssl_settings.flink.rest_url.startswith("https://")
    assert ssl_stack.flink.rest("/overview")["taskmanagers"] == 1  # a TaskManager registered over TLS RPC
    job_id = jobs.submit(ssl_settings)  # `flink run` with the client configuration
    try:
        assert job_id in [job["jid"] for job in ssl_stack.flink.jobs()]
    finally:
        jobs.cancel(ssl_settings)


def test_a_rest_call_without_the_client_certificate_is_refused(ssl_stack: LocalStack, ssl_settings: Settings) -> None:
    folder = FlinkTls(ssl_settings).folder
    trusting = ssl.create_default_context(cafile=str(folder / "ca.pem"))  # trusts the server, shows no certificate
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"{ssl_settings.flink.rest_url}/jobs/overview", timeout=10,  # noqa: S310
                               context=trusting).read()
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        plain = f"http://127.0.0.1:{ssl_settings.flink.rest_port}/jobs/overview"
        urllib.request.urlopen(plain, timeout=10).read()  # noqa: S310


@pytest.mark.parametrize("port", ["rpc_port", "blob_port"])
def test_the_rpc_and_blob_ports_speak_tls_and_want_a_client_certificate(
    ssl_stack: LocalStack, ssl_settings: Settings, port: str
) -> None:
    folder = FlinkTls(ssl_settings).folder
    done = subprocess.run(  # noqa: S603 - a fixed command line
        ["openssl", "s_client", "-connect", f"127.0.0.1:{getattr(ssl_settings.flink, port)}",
         "-CAfile", str(folder / "ca.pem")],
        input="", capture_output=True, text=True, timeout=30, check=False,
    )
    out = done.stdout + done.stderr
    assert "subject=CN = node" in out and "Verify return code: 0 (ok)" in out, out[-2000:]  # the cluster's cert
    assert "alert bad certificate" in out or "alert certificate required" in out, out[-2000:]
    answer = _answer_to_cleartext(getattr(ssl_settings.flink, port))
    assert not answer or answer[:1] == b"\x15", answer  # nothing, or a TLS alert record: never the protocol


def _answer_to_cleartext(port: int) -> bytes:
    """What the port sends back to bytes that are not TLS (b"" when it just closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(b"\x00" * 64)
        try:
            return raw.recv(64)
        except OSError:
            return b""
