"""The gateway's codes without a broker: INVALID_ARGUMENT, NOT_FOUND, DEADLINE_EXCEEDED,
UNAVAILABLE, UNAUTHENTICATED; health; TLS with a self-signed certificate; stored results."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aimass.contract.messages import InferenceResult, Status, Tensor, Timings
from aimass.gateway._gen import inference_pb2 as pb
from aimass.gateway._gen import inference_pb2_grpc as pb_grpc

Factory = Callable[..., Any]
RunningGateway = Any  # tests/unit/gateway/conftest.py


def pixels(rows: int = 1, width: int = 64, dtype: str = "float32") -> pb.Tensor:
    array = np.zeros((rows, width), dtype)
    return pb.Tensor(name="pixels", dtype=dtype, shape=list(array.shape), data=array.tobytes())


def stub(gw: RunningGateway) -> pb_grpc.InferenceStub:
    return pb_grpc.InferenceStub(grpc.insecure_channel(f"127.0.0.1:{gw.port}"))


def code_of(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), caught.value.details()


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (pb.SubmitRequest(model="digits", inputs=[pixels(width=63)]), "shape [1, 63]"),
        (pb.SubmitRequest(model="digits", inputs=[pixels(dtype="float64")]), "got float64"),
        (pb.SubmitRequest(model="digits", inputs=[pb.Tensor(name="pixels", dtype="float32", shape=[1, 64],
                                                            data=b"\x00" * 10)]), "needs 256 bytes, got 10"),
        (pb.SubmitRequest(model="digits", inputs=[pb.Tensor(name="pixels", dtype="float16", shape=[1])]),
         "dtype 'float16'"),
        (pb.SubmitRequest(model="digits"), "no inputs"),
        (pb.SubmitRequest(model="digits", inputs=[pixels(rows=300)]), "exceeds the limit of 65536 bytes"),
    ],
)
def test_bad_submits_are_invalid_argument_before_kafka(
    gateway_factory: Factory, request_: pb.SubmitRequest, message: str
) -> None:
    gw = gateway_factory()
    started = time.monotonic()
    code, details = code_of(lambda: stub(gw).Submit(request_, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in details
    assert time.monotonic() - started < 1  # refused at once, not after a Kafka timeout


def test_a_message_beyond_the_grpc_limit_is_refused(gateway_factory: Factory) -> None:
    gw = gateway_factory()
    huge = pb.SubmitRequest(model="digits", inputs=[pixels(rows=2000)])  # 512 kB > 64 KiB + framing
    code, _ = code_of(lambda: stub(gw).Submit(huge, timeout=10))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_broker_outage_is_unavailable_within_bounded_time(gateway_factory: Factory) -> None:
    gw = gateway_factory()
    started = time.monotonic()
    code, details = code_of(lambda: stub(gw).Submit(pb.SubmitRequest(model="digits", inputs=[pixels()]), timeout=30))
    assert code == grpc.StatusCode.UNAVAILABLE, details
    assert time.monotonic() - started < 5


def test_unknown_ids_are_not_found_with_and_without_waiting(gateway_factory: Factory) -> None:
    gw = gateway_factory()
    code, _ = code_of(lambda: stub(gw).GetResult(pb.GetResultRequest(request_id="nope"), timeout=5))
    assert code == grpc.StatusCode.NOT_FOUND
    started = time.monotonic()
    code, details = code_of(lambda: stub(gw).GetResult(pb.GetResultRequest(request_id="nope", wait=True), timeout=1))
    assert code == grpc.StatusCode.NOT_FOUND and "never seen" in details
    assert 0.5 < time.monotonic() - started < 1.0
    code, _ = code_of(lambda: stub(gw).GetResult(pb.GetResultRequest(), timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_pending_ids_exceed_the_deadline(gateway_factory: Factory) -> None:
    gw = gateway_factory()
    gw.store.expect("pending-id")
    code, details = code_of(
        lambda: stub(gw).GetResult(pb.GetResultRequest(request_id="pending-id", wait=True), timeout=0.5))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    code, details = code_of(lambda: stub(gw).GetResult(pb.GetResultRequest(request_id="pending-id"), timeout=5))
    assert code == grpc.StatusCode.NOT_FOUND and "pending" in details


def _result(rid: str) -> InferenceResult:
    return InferenceResult(request_id=rid, model="digits", status=Status.OK, completed_at_ms=123, version="1",
                           outputs=(Tensor.from_numpy("label", np.array([3], np.int64)),),
                           timings=Timings(batch_size=2, end_to_end_ms=4.5))


def test_stored_results_are_answered_waited_for_and_streamed(gateway_factory: Factory) -> None:
    gw = gateway_factory()
    client = stub(gw)
    gw.store.put(_result("done"))
    answer = client.GetResult(pb.GetResultRequest(request_id="done"), timeout=5)
    assert answer.status == pb.STATUS_OK and answer.version == "1" and answer.timings.batch_size == 2
    assert np.frombuffer(answer.outputs[0].data, "<i8").tolist() == [3]

    future = client.GetResult.future(pb.GetResultRequest(request_id="later", wait=True), timeout=10)
    time.sleep(0.3)
    gw.store.put(_result("later"))
    assert future.result().request_id == "later"

    stream = client.StreamResults(pb.StreamResultsRequest(request_ids=["done", "soon"]), timeout=10)
    first = next(stream)
    gw.store.put(_result("soon"))
    assert {first.request_id, next(stream).request_id} == {"done", "soon"}
    assert list(stream) == []  # ends once every listed id was sent


def test_health_is_not_serving_until_results_are_replayed(gateway_factory: Factory) -> None:
    gw = gateway_factory()
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{gw.port}"))
    for service in ("", "aimass.v1.Inference"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_bearer_token_is_required_except_for_health(gateway_factory: Factory) -> None:
    gw = gateway_factory(AIMASS_GATEWAY_TOKEN="s3cret")
    client = stub(gw)
    bad = pb.SubmitRequest(model="digits", inputs=[pixels(width=3)])
    for metadata in ((), (("authorization", "Bearer wrong"),), (("authorization", "s3cret"),)):
        code, _ = code_of(lambda md=metadata: client.Submit(bad, metadata=md, timeout=5))
        assert code == grpc.StatusCode.UNAUTHENTICATED
    code, _ = code_of(lambda: list(client.StreamResults(pb.StreamResultsRequest(), timeout=5)))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    code, _ = code_of(lambda: client.Submit(bad, metadata=(("authorization", "Bearer s3cret"),), timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT  # past the check
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{gw.port}"))
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=5) is not None


def test_a_health_port_answers_plaintext_probes_beside_a_tls_api(gateway_factory: Factory, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    from tests.unit.gateway.conftest import _dead_port

    port = _dead_port()
    gw = gateway_factory(AIMASS_GATEWAY_TLS_CERT=str(cert), AIMASS_GATEWAY_TLS_KEY=str(key),
                         AIMASS_GATEWAY_TOKEN="s3cret", AIMASS_GATEWAY_HEALTH_PORT=str(port))
    assert gw.gateway.health_port == port
    probe = grpc.insecure_channel(f"127.0.0.1:{port}")
    reply = health_pb2_grpc.HealthStub(probe).Check(health_pb2.HealthCheckRequest(service="aimass.v1.Inference"),
                                                     timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING  # no Kafka: not caught up
    # Only the health service is there: the API is not reachable in plaintext through it.
    code, _ = code_of(lambda: pb_grpc.InferenceStub(probe).GetResult(pb.GetResultRequest(request_id="x"), timeout=5))
    assert code == grpc.StatusCode.UNIMPLEMENTED


def test_tls_with_a_self_signed_certificate(gateway_factory: Factory, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    gw = gateway_factory(AIMASS_GATEWAY_TLS_CERT=str(cert), AIMASS_GATEWAY_TLS_KEY=str(key))
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    secure = pb_grpc.InferenceStub(grpc.secure_channel(f"localhost:{gw.port}", credentials))
    code, _ = code_of(lambda: secure.GetResult(pb.GetResultRequest(request_id="x"), timeout=5))
    assert code == grpc.StatusCode.NOT_FOUND  # the call went through TLS to the service
    code, _ = code_of(lambda: stub(gw).GetResult(pb.GetResultRequest(request_id="x"), timeout=2))
    assert code == grpc.StatusCode.UNAVAILABLE  # plaintext is refused


def test_the_gateway_counts_its_calls_by_method_and_code(gateway_factory: Factory) -> None:
    from aimass.stack.prometheus import scrape, total
    from tests.unit.gateway.conftest import _dead_port

    gw = gateway_factory(AIMASS_GATEWAY_METRICS_PORT=str(_dead_port()), AIMASS_GATEWAY_TOKEN="s3cret")
    port = gw.gateway.metrics_port
    token = (("authorization", "Bearer s3cret"),)
    client = stub(gw)
    for _ in range(2):
        code_of(lambda: client.Submit(pb.SubmitRequest(model="digits", inputs=[pixels(width=3)]), metadata=token,
                                      timeout=5))
    code_of(lambda: client.GetResult(pb.GetResultRequest(request_id="nope"), metadata=token, timeout=5))
    code_of(lambda: client.GetResult(pb.GetResultRequest(request_id="nope"), timeout=5))  # no token
    submit, get = "/aimass.v1.Inference/Submit", "/aimass.v1.Inference/GetResult"
    # A call is counted as its handler ends, just after its answer went out: wait for the last one.
    deadline = time.monotonic() + 5
    while True:
        samples = scrape(f"http://127.0.0.1:{port}/metrics")
        if total(samples, "aimass_gateway_calls_total") >= 4 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert total(samples, "aimass_gateway_calls_total", method=submit, code="INVALID_ARGUMENT") == 2
    assert total(samples, "aimass_gateway_calls_total", method=get, code="NOT_FOUND") == 1
    assert total(samples, "aimass_gateway_calls_total", method=get, code="UNAUTHENTICATED") == 1
    assert total(samples, "aimass_gateway_call_seconds_count", method=submit) == 2
    assert total(samples, "aimass_gateway_store_results") == 0
    assert total(samples, "aimass_gateway_results_replayed") == 0  # no broker: never replayed
    assert total(samples, "aimass_gateway_results_read") == 0
    assert [s for s in samples if s.name == "aimass_gateway_results_lag"]
