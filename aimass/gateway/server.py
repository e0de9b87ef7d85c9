"""The gRPC gateway: a thin adapter from ``aimass.v1.Inference`` to the asyncio client, and
``aimass.v1.Control`` to the control topic (:mod:`aimass.gateway.control`).

On start it reads the results topic from the beginning (compacted, keyed by request id) into
its bounded, expiring store, so results produced before a restart stay answerable; the
standard health service says NOT_SERVING until that replay has caught up.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import socket
from collections.abc import AsyncIterator
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from aimass.client.aio import AsyncClient
from aimass.client.client import Client
from aimass.client.errors import ClientError, InvalidRequest, ResultTimeout, SubmitFailed, Unavailable
from aimass.contract.limits import MESSAGE_OVERHEAD_BYTES
from aimass.gateway._gen import inference_pb2 as pb
from aimass.gateway._gen import inference_pb2_grpc as pb_grpc
from aimass.gateway.auth import BearerTokenInterceptor
from aimass.gateway.control import ControlServicer
from aimass.gateway.convert import result_to_proto, tensor_from_proto
from aimass.gateway.metrics import GatewayMetrics, MetricsInterceptor
from aimass.settings import GatewaySettings, Settings

log = logging.getLogger("aimass.gateway")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Inference"].full_name
#: gRPC framing allowed on top of the payload limit.
#: Largest result message sent (results of bulk requests can be big).
_MAX_SEND_BYTES = 64 * 1024 * 1024


class InferenceServicer(pb_grpc.InferenceServicer):
    """``Submit``, ``GetResult`` and ``StreamResults`` over an :class:`AsyncClient`."""

    def __init__(self, client: AsyncClient, settings: GatewaySettings) -> None:
        self.client = client
        self.settings = settings

    async def Submit(self, request: pb.SubmitRequest, context: grpc.aio.ServicerContext) -> pb.SubmitResponse:  # noqa: N802
        budget = self.settings.kafka_timeout_ms / 1000
        try:
            tensors = [tensor_from_proto(t) for t in request.inputs]
            request_id = await asyncio.wait_for(
                self.client.submit_tensors(
                    request.model, tensors, request.version or None, request.deadline_ms or None,
                    request_id=request.request_id or None, priority=request.priority, ack_timeout=budget,
                ),
                timeout=budget + 1.0,
            )
        except InvalidRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
        except (Unavailable, TimeoutError) as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"Kafka did not take the request: {exc}")
        return pb.SubmitResponse(request_id=request_id)

    async def GetResult(self, request: pb.GetResultRequest, context: grpc.aio.ServicerContext) -> pb.Result:  # noqa: N802
        rid = request.request_id
        if not rid:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "request_id is empty")
        store = self.client.client.store
        try:
            found = store.get(rid)
            if found is not None:
                return result_to_proto(found)
            if not request.wait:
                await context.abort(grpc.StatusCode.NOT_FOUND, _not_found(rid, store.state(rid)))
            remaining = context.time_remaining()
            wait_s = self.settings.max_wait_s
            if remaining is not None:
                # Answer a little before the caller gives up, so that it learns which case it is.
                wait_s = min(wait_s, remaining - min(0.2, remaining * 0.2))
            return result_to_proto(await self.client.result(rid, timeout=max(wait_s, 0.0)))
        except SubmitFailed as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"{exc}; submit it again")
        except ResultTimeout:
            state = store.state(rid)
            if state == "pending":
                await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"request {rid} is pending: no result yet")
            await context.abort(grpc.StatusCode.NOT_FOUND, _not_found(rid, state))
        raise AssertionError("unreachable")  # context.abort raises

    async def StreamResults(  # noqa: N802
        self, request: pb.StreamResultsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Result]:
        ids = list(request.request_ids) or None
        try:
            async for result in self.client.results(ids, include_stored=request.include_stored):
                yield result_to_proto(result)
        except ClientError as exc:  # a listed id whose request was never delivered
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))


def _not_found(rid: str, state: str) -> str:
    if state == "pending":
        return f"request {rid} is pending: no result yet (ask with wait and a deadline)"
    return f"no result for request {rid}: never seen by this gateway, or older than its store keeps"


class Gateway:
    """The gateway server: call :meth:`start`, then :meth:`wait` or :meth:`stop`.

    Args:
        settings: All settings (Kafka, topics, delivery and the ``gateway`` section).
        port: Override ``settings.gateway.port`` (0: any free port; see :attr:`port`).
    """

    def __init__(self, settings: Settings, port: int | None = None) -> None:
        self.settings = settings
        gw = settings.gateway
        self.host = gw.host
        self.port = gw.port if port is None else port
        self.health = health.aio.HealthServicer()
        self.client: AsyncClient | None = None
        self.server: grpc.aio.Server | None = None
        self.health_server: grpc.aio.Server | None = None
        self.health_port = 0
        self.metrics: GatewayMetrics | None = None
        self.metrics_port = 0
        self._watch: asyncio.Task[None] | None = None

    @property
    def tls(self) -> bool:
        """Whether the gateway serves TLS."""
        return self.settings.gateway.tls_cert is not None

    async def start(self) -> int:
        """Start reading results and serving; returns the bound port."""
        s, gw = self.settings, self.settings.gateway
        if not _is_loopback(gw.host) and not (gw.token and self.tls):
            log.warning("gateway on %s without both a token and TLS: anyone who can reach it can use it", gw.host)
        inner = Client(s, start="beginning", max_payload_bytes=s.job.max_payload_bytes)
        self.client = await AsyncClient(client=inner).start()
        interceptors: list[grpc.aio.ServerInterceptor] = [BearerTokenInterceptor(gw.token)] if gw.token else []
        if gw.metrics_port:
            self.metrics = GatewayMetrics()
            self.metrics_port = self.metrics.serve(gw.host, gw.metrics_port)
            self.metrics.store.set_function(lambda: len(inner.store))
            self.metrics.lag.set_function(lambda: (inner.feed.lag or 0) if inner.feed is not None else 0)
            self.metrics.read.set_function(lambda: inner.feed.records if inner.feed is not None else 0)
            interceptors.insert(0, MetricsInterceptor(self.metrics))  # outermost: refused calls count too
        limit = s.job.max_payload_bytes + MESSAGE_OVERHEAD_BYTES
        self.server = grpc.aio.server(
            interceptors=interceptors,
            maximum_concurrent_rpcs=gw.max_concurrent_rpcs,
            options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", _MAX_SEND_BYTES)],
        )
        pb_grpc.add_InferenceServicer_to_server(InferenceServicer(self.client, gw), self.server)
        pb_grpc.add_ControlServicer_to_server(ControlServicer(s), self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        for service in ("", SERVICE_NAME):
            await self.health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        address = f"{_bracket(self.host)}:{self.port}"
        if gw.tls_cert is not None and gw.tls_key is not None:
            credentials = grpc.ssl_server_credentials([(gw.tls_key.read_bytes(), gw.tls_cert.read_bytes())])
            self.port = self.server.add_secure_port(address, credentials)
        else:
            self.port = self.server.add_insecure_port(address)
        await self.server.start()
        if gw.health_port:
            await self._start_health_port(gw.health_port)
        self._watch = asyncio.create_task(self._serving_when_caught_up(inner))
        return self.port

    async def _start_health_port(self, port: int) -> None:
        """The health service alone, plaintext, on ``port`` with a call budget of its own, so
        that probes neither need TLS nor compete with the API's calls (and cannot exhaust them)."""
        self.health_server = grpc.aio.server(
            maximum_concurrent_rpcs=HEALTH_PORT_CONCURRENT_RPCS,
            options=[("grpc.max_receive_message_length", 1024)],
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.health_server)
        self.health_port = self.health_server.add_insecure_port(f"{_bracket(self.host)}:{port}")
        await self.health_server.start()

    async def _serving_when_caught_up(self, client: Client) -> None:
        feed = client.feed
        assert feed is not None
        while not await asyncio.to_thread(feed.wait_ready, 1.0):
            pass
        log.info("results replayed from %s (%d kept); serving", feed.topic, len(client.store))
        for service in ("", SERVICE_NAME):
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        if self.metrics is not None:
            self.metrics.replayed.set(1)

    async def wait(self) -> None:
        """Serve until the server stops."""
        assert self.server is not None
        await self.server.wait_for_termination()

    async def stop(self, grace: float = 2.0) -> None:
        """Say NOT_SERVING, finish calls in flight for up to ``grace`` seconds, then close."""
        await self.health.enter_graceful_shutdown()
        if self._watch is not None:
            self._watch.cancel()
        if self.server is not None:
            await self.server.stop(grace)
        if self.health_server is not None:
            await self.health_server.stop(0)
        if self.metrics is not None:
            self.metrics.close()
        if self.client is not None:
            await self.client.close()


HEALTH_PORT_CONCURRENT_RPCS = 64
"""Calls in progress on the health-only port (``gateway.health_port``); probes make one each."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bracket(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


async def serve(settings: Settings, port: int | None = None, say: Any = print) -> None:
    """Run a gateway until SIGINT or SIGTERM."""
    gateway = Gateway(settings, port)
    bound = await gateway.start()
    gw = settings.gateway
    say(f"gateway listening on {gw.host}:{bound} (TLS {'on' if gateway.tls else 'off'}, "
        f"token {'on' if gw.token else 'off'}"
        f"{f', health on plaintext port {gateway.health_port}' if gateway.health_port else ''}"
        f"{f', metrics on :{gateway.metrics_port}/metrics' if gateway.metrics_port else ''}); "
        f"Kafka {settings.kafka.bootstrap}, "
        f"results from {settings.kafka.results_topic}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.create_task(gateway.wait())
    await asyncio.wait([waiter, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    await gateway.stop()
    waiter.cancel()


def free_port(host: str = "127.0.0.1") -> int:
    """A port free at the time of asking (for tests and benchmarks)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
