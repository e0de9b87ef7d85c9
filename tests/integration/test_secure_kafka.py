"""Kafka over SASL_SSL on the real stack: a second job and the client library through the local
broker's SASL PLAIN + TLS listener (a generated CA, certificate and password), configured the
way a user would (AIMASS_KAFKA_CLIENT_PROPERTIES with the standard, unshaded JAAS class name);
and what the listener refuses: plaintext, a wrong password, an untrusted certificate."""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from aimass.client import Client
from aimass.client.errors import Unavailable
from aimass.contract.messages import Status
from aimass.kafka_config import python_client_config
from aimass.settings import Settings
from aimass.stack import jobs
from aimass.stack.acls import CLIENT_USER, JOB_USER
from aimass.stack.local import LocalStack

pytestmark = pytest.mark.integration

REQUESTS = 50
#: Short bounds for the refusals: each must fail within these, not hang.
REFUSAL_TIMEOUT_MS = 3000


@pytest.fixture(scope="module")
def secure_settings(local_stack: LocalStack, test_settings: Settings) -> Settings:
    """Settings of a second job and its clients on the SASL_SSL listener, with their own topics."""
    k, job = test_settings.kafka, test_settings.job
    assert k.secure_port, "tests/conftest.py sets AIMASS_KAFKA_SECURE_PORT"
    suffix = uuid.uuid4().hex[:8]
    plain = dataclasses.replace(
        test_settings,
        kafka=dataclasses.replace(
            k, requests_topic=f"aimass.secure.requests-{suffix}", results_topic=f"aimass.secure.results-{suffix}",
            dead_letter_topic=f"aimass.secure.dead-letters-{suffix}",
        ),
        job=dataclasses.replace(
            job, name=f"{job.name}-secure", transactional_id_prefix=f"{job.transactional_id_prefix}-secure-{suffix}",
            consumer_group=f"{job.consumer_group}-secure", parallelism=1,
        ),
    )
    created = type(local_stack.kafka)(plain).ensure_topics()  # the stack's admin: plaintext port
    assert len(created) == 3, created
    assert k.acls, "tests/conftest.py sets AIMASS_KAFKA_ACLS"
    local_stack.kafka.grant_acls(plain)  # the job user's rights on this job's own topics
    properties = local_stack.kafka.secure_client_properties(JOB_USER)
    assert "org.apache.kafka.common.security.plain.PlainLoginModule" in properties  # unshaded, as users write it
    secure = dataclasses.replace(
        plain, kafka=dataclasses.replace(plain.kafka, port=k.secure_port, client_properties=properties)
    )
    secure.validate()
    return secure


@pytest.fixture(scope="module")
def client_settings(local_stack: LocalStack, secure_settings: Settings) -> Settings:
    """The second job's topics as the ``client`` user sees them: it writes requests, reads results."""
    properties = local_stack.kafka.secure_client_properties(CLIENT_USER)
    return dataclasses.replace(secure_settings, kafka=dataclasses.replace(secure_settings.kafka,
                                                                          client_properties=properties))


@pytest.fixture(scope="module")
def secure_job(local_stack: LocalStack, secure_settings: Settings) -> Iterator[str]:
    """The second job, on an extra TaskManager (the session's job holds the first one's slots)."""
    before = len([tm for tm in local_stack.flink.taskmanagers() if tm.pid() is not None])
    try:
        local_stack.set_taskmanagers(before + 1)
        yield jobs.submit(secure_settings)
    finally:
        jobs.cancel(secure_settings)
        local_stack.set_taskmanagers(before)


def _broker_log_since(settings: Settings, offset: int, needle: str, timeout_s: float = 10) -> str:
    """New lines of the broker's log containing ``needle`` (waits a little for the log to be written)."""
    path = settings.paths.state_dir / "logs" / "kafka-server.log"
    deadline = time.monotonic() + timeout_s
    while True:
        with path.open("rb") as log:
            log.seek(offset)
            found = [line for line in log.read().decode(errors="replace").splitlines() if needle in line]
        if found or time.monotonic() > deadline:
            return "\n".join(found)
        time.sleep(0.3)


def _log_size(settings: Settings) -> int:
    path: Path = settings.paths.state_dir / "logs" / "kafka-server.log"
    return path.stat().st_size


def test_job_and_client_library_serve_over_sasl_ssl(client_settings: Settings, secure_job: str) -> None:
    # The job runs as user "job", the client library as user "client": each with only its ACLs.
    from aimass.tools.demo import load_holdout

    models_dir = client_settings.paths.models_dir
    images, _ = load_holdout(models_dir)
    started = time.monotonic()
    with Client(client_settings) as client:
        assert client.kafka_config["security_protocol"] == "SASL_SSL"
        feed = client.feed
        assert feed is not None and feed.wait_ready(30), feed and feed.error
        ids = [client.submit("digits", {"pixels": images[i : i + 1]}) for i in range(REQUESTS)]
        client.flush(30)
        results = {r.request_id: r for r in client.results(ids, timeout=90)}
    assert len(results) == REQUESTS, f"{REQUESTS - len(results)} results missing over SASL_SSL"
    print(f"[secure] {REQUESTS} results over SASL_SSL in {time.monotonic() - started:.1f} s")

    sessions: dict[str, ort.InferenceSession] = {}
    for i, rid in enumerate(ids):
        result = results[rid]
        assert result.status is Status.OK, result.error
        assert result.model == "digits" and result.version is not None
        if result.version not in sessions:
            sessions[result.version] = ort.InferenceSession(str(models_dir / "digits" / result.version / "model.onnx"))
        session = sessions[result.version]
        expected = session.run(None, {"pixels": images[i : i + 1]})
        for output, value in zip(session.get_outputs(), expected, strict=True):
            got = result.output(output.name)
            assert got.dtype == value.dtype and got.shape == value.shape
            np.testing.assert_allclose(got, value, rtol=1e-5, atol=1e-6)


def test_plaintext_client_is_refused_by_the_secure_listener(secure_settings: Settings) -> None:
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    offset = _log_size(secure_settings)
    started = time.monotonic()
    with pytest.raises(KafkaError, match="bootstrap"):
        KafkaProducer(bootstrap_servers=secure_settings.kafka.bootstrap, max_block_ms=REFUSAL_TIMEOUT_MS,
                      bootstrap_timeout_ms=REFUSAL_TIMEOUT_MS, request_timeout_ms=REFUSAL_TIMEOUT_MS)
    assert time.monotonic() - started < 3 * REFUSAL_TIMEOUT_MS / 1000
    assert _broker_log_since(secure_settings, offset, "SSL handshake failed")


def test_wrong_password_is_refused_with_a_clear_error(secure_settings: Settings) -> None:
    k = secure_settings.kafka
    wrong = dataclasses.replace(
        secure_settings,
        kafka=dataclasses.replace(k, client_properties=k.client_properties.replace('password="', 'password="x')),
    )
    offset = _log_size(secure_settings)
    started = time.monotonic()
    with (Client(wrong, read_results=False, kafka_timeout_ms=REFUSAL_TIMEOUT_MS) as client,
          pytest.raises(Unavailable, match="over SASL_SSL: a wrong password or CA")):
        client.submit("digits", {"pixels": np.zeros((1, 64), np.float32)})
    assert time.monotonic() - started < 3 * REFUSAL_TIMEOUT_MS / 1000
    assert _broker_log_since(secure_settings, offset, "Invalid username or password")


def test_certificate_from_an_untrusted_ca_is_refused(
    secure_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    config = python_client_config(secure_settings.kafka)
    del config["ssl_cafile"]  # the system's CAs do not know the generated one
    with caplog.at_level(logging.ERROR, logger="kafka"), pytest.raises(KafkaError):
        KafkaProducer(bootstrap_servers=secure_settings.kafka.bootstrap, max_block_ms=REFUSAL_TIMEOUT_MS,
                      bootstrap_timeout_ms=REFUSAL_TIMEOUT_MS, request_timeout_ms=REFUSAL_TIMEOUT_MS, **config)
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text


def test_the_client_user_cannot_write_results_nor_read_requests(client_settings: Settings, secure_job: str) -> None:
    # With kafka.acls, only the job writes results: a client cannot forge another's answer.
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.errors import TopicAuthorizationFailedError

    k = client_settings.kafka
    config = python_client_config(k)
    producer = KafkaProducer(bootstrap_servers=k.bootstrap, max_block_ms=10_000, **config)
    try:
        producer.send(k.requests_topic, key=b"k", value=b"allowed").get(timeout=10)  # its right
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send(k.results_topic, key=b"forged", value=b"not a result").get(timeout=10)
    finally:
        producer.close(5)
    consumer = KafkaConsumer(bootstrap_servers=k.bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000,
                             **config)
    try:
        consumer.assign([TopicPartition(k.requests_topic, 0)])
        consumer.seek_to_beginning()
        with pytest.raises(TopicAuthorizationFailedError):
            consumer.poll(timeout_ms=5000)
            consumer.poll(timeout_ms=5000)
    finally:
        consumer.close()
