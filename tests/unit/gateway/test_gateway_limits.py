"""The gateway cannot be shut for everyone: health has its own budget, streams end, refused
calls cost their headers only, a connection's streams are bounded, tokens never travel in
cleartext off loopback, and remote messages keep this server's details to its log."""

from __future__ import annotations

import asyncio
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
from aimass.gateway.guard import AUTO_RPCS_MAX, AUTO_RPCS_MIN, concurrent_rpcs_for
from aimass.gateway.server import Gateway, redactor
from aimass.settings import Settings, SettingsError
from tests.unit.gateway.test_gateway_server import code_of, pixels, stub

Factory = Callable[..., Any]
TOKEN = (("authorization", "Bearer s3cret-token-0123456789"),)


def _certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def _result(rid: str) -> InferenceResult:
    return InferenceResult(request_id=rid, model="digits", status=Status.OK, completed_at_ms=123, version="1",
                           outputs=(Tensor.from_numpy("label", np.array([3], np.int64)),), timings=Timings())


def test_ten_thousand_health_watches_leave_the_api_and_the_probes_open(
    gateway_factory: Factory, tmp_path: Path
) -> None:
    # Before health had budgets of its own, 10,000 open watches (no token needed) filled the
    # server-wide maximum_concurrent_rpcs and every other call got RESOURCE_EXHAUSTED.
    cert, key = _certificate(tmp_path)
    gw = gateway_factory(AIMASS_GATEWAY_TLS_CERT=str(cert), AIMASS_GATEWAY_TLS_KEY=str(key),
                         AIMASS_GATEWAY_TOKEN="s3cret-token-0123456789", AIMASS_GATEWAY_MAX_CONCURRENT_RPCS="10000")
    gw.store.put(_result("done"))
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())

    async def attack() -> tuple[dict[str, int], pb.Result, int]:
        channel = grpc.aio.secure_channel(f"localhost:{gw.port}", credentials)
        health = health_pb2_grpc.HealthStub(channel)
        outcomes: dict[str, int] = {}

        async def watch() -> None:
            call = health.Watch(health_pb2.HealthCheckRequest())
            try:
                await call.read()
                outcomes["open"] = outcomes.get("open", 0) + 1
                await asyncio.sleep(3600)
            except grpc.aio.AioRpcError as exc:
                outcomes[exc.code().name] = outcomes.get(exc.code().name, 0) + 1
            finally:
                call.cancel()

        tasks = [asyncio.create_task(watch()) for _ in range(10_000)]
        deadline = time.monotonic() + 60
        while sum(outcomes.values()) < 10_000 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        # Another client (a connection of its own): the flooding one may be told REFUSED_STREAM
        # for a while by gRPC's rapid-reset mitigation, which is right for it.
        other = grpc.aio.secure_channel(f"localhost:{gw.port}", credentials)
        answer = await pb_grpc.InferenceStub(other).GetResult(pb.GetResultRequest(request_id="done"), metadata=TOKEN,
                                                              timeout=10)
        probe = await health_pb2_grpc.HealthStub(other).Check(health_pb2.HealthCheckRequest(), timeout=10)
        await other.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await channel.close()
        return outcomes, answer, probe.status

    outcomes, answer, probe = asyncio.run(attack())
    assert answer.request_id == "done"  # a normal call, with 10,000 watches asked for
    assert probe == health_pb2.HealthCheckResponse.NOT_SERVING  # answered (no Kafka here: not caught up)
    # 100 open (gateway.max_health_watches); the rest refused by the budget (RESOURCE_EXHAUSTED)
    # or, sent before the server's SETTINGS reached the client, by HTTP/2 (REFUSED_STREAM: UNAVAILABLE).
    assert outcomes["open"] == 100 and outcomes.get("RESOURCE_EXHAUSTED", 0) > 0
    assert set(outcomes) <= {"open", "RESOURCE_EXHAUSTED", "UNAVAILABLE"} and sum(outcomes.values()) == 10_000


def test_an_unauthenticated_call_is_refused_before_its_body_is_read(gateway_factory: Factory) -> None:
    # 512 kB is past the receive limit (64 KiB + framing): had the body been read, the answer
    # would be RESOURCE_EXHAUSTED ("larger than max"), as it is with the token.
    gw = gateway_factory(AIMASS_GATEWAY_TOKEN="s3cret-token-0123456789")
    huge = pb.SubmitRequest(model="digits", inputs=[pixels(rows=2000)])
    code, _ = code_of(lambda: stub(gw).Submit(huge, timeout=10))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    code, _ = code_of(lambda: stub(gw).Submit(huge, metadata=TOKEN, timeout=10))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_the_api_budget_refuses_beyond_it_and_frees_on_completion(gateway_factory: Factory) -> None:
    from aimass.stack.prometheus import scrape, total
    from tests.unit.gateway.conftest import _dead_port

    gw = gateway_factory(AIMASS_GATEWAY_MAX_CONCURRENT_RPCS="2", AIMASS_GATEWAY_METRICS_PORT=str(_dead_port()))
    client = stub(gw)
    waiting = [client.GetResult.future(pb.GetResultRequest(request_id=f"w{n}", wait=True), timeout=3) for n in (1, 2)]
    time.sleep(0.5)
    code, details = code_of(lambda: client.GetResult(pb.GetResultRequest(request_id="x"), timeout=5))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "2 api calls" in details
    samples = scrape(f"http://127.0.0.1:{gw.gateway.metrics_port}/metrics")
    assert total(samples, "aimass_gateway_calls_in_progress", budget="api") == 2
    assert total(samples, "aimass_gateway_calls_refused", budget="api") == 1
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{gw.port}"))
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=5) is not None  # its own budget
    for future in waiting:
        with pytest.raises(grpc.RpcError):
            future.result()
    code, _ = code_of(lambda: client.GetResult(pb.GetResultRequest(request_id="x"), timeout=5))
    assert code == grpc.StatusCode.NOT_FOUND  # the budget is back


def test_streams_end_after_the_maximum_duration(gateway_factory: Factory) -> None:
    gw = gateway_factory(AIMASS_GATEWAY_MAX_STREAM_S="1")
    started = time.monotonic()
    code, details = code_of(lambda: list(stub(gw).StreamResults(
        pb.StreamResultsRequest(request_ids=["never"]), timeout=20)))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED and "gateway.max_stream_s" in details
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{gw.port}"))
    code, _ = code_of(lambda: list(health.Watch(health_pb2.HealthCheckRequest(), timeout=20)))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 6


def test_one_connection_has_a_bounded_number_of_streams(gateway_factory: Factory) -> None:
    gw = gateway_factory(AIMASS_GATEWAY_MAX_STREAMS_PER_CONNECTION="2")
    channel = grpc.insecure_channel(f"127.0.0.1:{gw.port}")
    health = health_pb2_grpc.HealthStub(channel)
    first, second = (health.Watch(health_pb2.HealthCheckRequest(), timeout=30) for _ in range(2))
    next(first), next(second)
    third = health.Watch(health_pb2.HealthCheckRequest(), timeout=30)
    reader = _reads_first(third)
    time.sleep(1.5)
    assert not reader.done()  # waits on the client's side for a free stream
    first.cancel()
    assert reader.result(10) is not None
    second.cancel(), third.cancel()


def _reads_first(call: Any) -> Any:
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(1).submit(lambda: next(call))


def test_too_many_ids_in_one_stream_are_refused(gateway_factory: Factory) -> None:
    gw = gateway_factory(AIMASS_GATEWAY_MAX_STREAM_IDS="3")
    code, details = code_of(lambda: list(stub(gw).StreamResults(
        pb.StreamResultsRequest(request_ids=["a", "b", "c", "d"]), timeout=5)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "at most 3" in details


def test_a_token_in_cleartext_off_loopback_is_refused(models_dir: Path) -> None:
    settings = Settings.load(env={"AIMASS_PATHS_MODELS_DIR": str(models_dir), "AIMASS_GATEWAY_HOST": "0.0.0.0",
                                  "AIMASS_GATEWAY_TOKEN": "s3cret-token-0123456789"})
    with pytest.raises(SettingsError, match="cleartext.*AIMASS_GATEWAY_TLS_CERT"):
        asyncio.run(Gateway(settings, port=0).start())


def test_the_memory_sized_budget() -> None:
    mib = 1024 * 1024
    assert concurrent_rpcs_for(24 * 1024 * mib, 4 * mib + 64 * 1024) == 1512
    assert concurrent_rpcs_for(256 * mib, 4 * mib) == AUTO_RPCS_MIN
    assert concurrent_rpcs_for(1024 * 1024 * mib, 1024) == AUTO_RPCS_MAX


def test_remote_messages_lose_paths_addresses_and_model_lists(models_dir: Path) -> None:
    settings = Settings.load(env={"AIMASS_PATHS_MODELS_DIR": str(models_dir), "AIMASS_KAFKA_PORT": "19999"})
    redact = redactor(settings)
    said = redact(f"unknown model 'x' in {models_dir}; models: digits, secret_model")
    assert str(models_dir) not in said and "secret_model" not in said and "unknown model 'x'" in said
    assert "127.0.0.1:19999" not in redact("cannot reach 127.0.0.1:19999")
    assert redact("shape [1, 63] does not fit [-1, 64]") == "shape [1, 63] does not fit [-1, 64]"


def test_a_broker_outage_names_no_address(gateway_factory: Factory) -> None:
    gw = gateway_factory()
    code, details = code_of(lambda: stub(gw).Submit(pb.SubmitRequest(model="digits", inputs=[pixels()]), timeout=30))
    assert code == grpc.StatusCode.UNAVAILABLE
    assert str(gw.settings.kafka.port) not in details and "127.0.0.1" not in details
