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
import re
import signal
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from aimass.client.aio import AsyncClient
from aimass.client.client import Client
from aimass.client.errors import ClientError, InvalidRequest, ResultTimeout, SubmitFailed, Unavailable
from aimass.contract.limits import MESSAGE_OVERHEAD_BYTES
from aimass.gateway._gen import inference_pb2 as pb
from aimass.gateway._gen import inference_pb2_grpc as pb_grpc
from aimass.gateway.auth import TokenTable
from aimass.gateway.control import ControlServicer
from aimass.gateway.convert import result_to_proto, tensor_from_proto
from aimass.gateway.guard import CALLER, Gatekeeper, concurrent_rpcs_for, memory_bytes
from aimass.gateway.metrics import GatewayMetrics
from aimass.settings import PROJECT_ROOT, GatewaySettings, Settings, SettingsError, is_loopback

log = logging.getLogger("aimass.gateway")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Inference"].full_name
#: gRPC framing allowed on top of the payload limit.
#: Largest result message sent (results of bulk requests can be big).
_MAX_SEND_BYTES = 64 * 1024 * 1024


class InferenceServicer(pb_grpc.InferenceServicer):
    """``Submit``, ``GetResult`` and ``StreamResults`` over an :class:`AsyncClient`, each in the
    caller's namespace (:class:`aimass.gateway.auth.Identity`, set by the gatekeeper)."""

    def __init__(self, client: AsyncClient, settings: GatewaySettings, redact: Callable[[str], str] = str) -> None:
        self.client = client
        self.settings = settings
        self.redact = redact

    async def _abort(self, context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
        """Abort with ``message`` cleared of this server's paths and addresses (the whole of it is logged)."""
        public = self.redact(message)
        if public != message:
            log.info("%s answered %s: %s", CALLER.get().name, code.name, message)
        await context.abort(code, public)
        raise AssertionError("unreachable")  # context.abort raises

    async def Submit(self, request: pb.SubmitRequest, context: grpc.aio.ServicerContext) -> pb.SubmitResponse:  # noqa: N802
        budget = self.settings.kafka_timeout_ms / 1000
        caller = CALLER.get()
        try:
            tensors = [tensor_from_proto(t) for t in request.inputs]
            request_id = await asyncio.wait_for(
                self.client.submit_tensors(
                    request.model, tensors, request.version or None, request.deadline_ms or None,
                    request_id=caller.own(request.request_id or str(uuid.uuid4())), priority=request.priority,
                    ack_timeout=budget,
                ),
                timeout=budget + 1.0,
            )
        except InvalidRequest as exc:
            await self._abort(context, grpc.StatusCode.INVALID_ARGUMENT, exc.message)
        except (Unavailable, TimeoutError) as exc:
            log.warning("Kafka did not take a request of %s: %s", caller.name, exc)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "Kafka did not take the request in time: submit it again")
        return pb.SubmitResponse(request_id=request_id)

    async def GetResult(self, request: pb.GetResultRequest, context: grpc.aio.ServicerContext) -> pb.Result:  # noqa: N802
        if not request.request_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "request_id is empty")
        rid = CALLER.get().own(request.request_id)
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
        except SubmitFailed:
            await context.abort(grpc.StatusCode.UNAVAILABLE,
                                f"request {rid} was not delivered to Kafka: submit it again")
        except ResultTimeout:
            state = store.state(rid)
            if state == "pending":
                await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"request {rid} is pending: no result yet")
            await context.abort(grpc.StatusCode.NOT_FOUND, _not_found(rid, state))
        raise AssertionError("unreachable")  # context.abort raises

    async def StreamResults(  # noqa: N802
        self, request: pb.StreamResultsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Result]:
        caller = CALLER.get()
        limit = self.settings.max_stream_ids
        if len(request.request_ids) > limit:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"{len(request.request_ids)} ids in one StreamResults; the gateway takes at most "
                                f"{limit} (gateway.max_stream_ids): split them over several calls")
        ids = [caller.own(rid) for rid in request.request_ids] or None
        if ids is None and not caller.admin:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                "streaming every result needs an admin token: list the request ids to follow")
        buffer = self.settings.stream_buffer if ids is None else len(ids) + 16
        try:
            async for result in self.client.results(ids, include_stored=request.include_stored, maxsize=buffer):
                yield result_to_proto(result)
        except ClientError:  # a listed id whose request was never delivered
            await context.abort(grpc.StatusCode.UNAVAILABLE,
                                "a listed request was not delivered to Kafka: submit it again")


def _not_found(rid: str, state: str) -> str:
    if state == "pending":
        return f"request {rid} is pending: no result yet (ask with wait and a deadline)"
    return f"no result for request {rid}: never seen by this gateway, or older than its store keeps"


def redactor(settings: Settings) -> Callable[[str], str]:
    """What remote callers may see of a message: this server's folders and Kafka address
    replaced by placeholders, and model lists cut (the full text goes to the log)."""
    folders = sorted({str(p) for p in (settings.paths.models_dir, settings.paths.state_dir, PROJECT_ROOT)},
                     key=len, reverse=True)
    servers = [s.strip() for s in settings.kafka.bootstrap.split(",") if s.strip()]

    def redact(message: str) -> str:
        for folder in folders:
            message = message.replace(folder, "<server>")
        for server in servers:
            message = message.replace(server, "<kafka>")
        return _MODEL_LIST.sub("", message)

    return redact


_MODEL_LIST = re.compile(r";\s*(models|versions|known)\b[^;]*$")


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
        self.gatekeeper: Gatekeeper | None = None
        self._watch: asyncio.Task[None] | None = None

    @property
    def tls(self) -> bool:
        """Whether the gateway serves TLS."""
        return self.settings.gateway.tls_cert is not None

    async def start(self) -> int:
        """Start reading results and serving; returns the bound port.

        Raises:
            SettingsError: A token would travel in cleartext off loopback, or a token file is unusable.
        """
        s, gw = self.settings, self.settings.gateway
        tokens = TokenTable.from_settings(gw)
        if not is_loopback(gw.host):
            if tokens and not self.tls:
                raise SettingsError(
                    f"AIMASS_GATEWAY_HOST={gw.host} with a token and no TLS would carry the token in cleartext: "
                    "set AIMASS_GATEWAY_TLS_CERT and AIMASS_GATEWAY_TLS_KEY (or serve on 127.0.0.1)")
            if not tokens:
                log.warning("gateway on %s without a token: anyone who can reach it can use it", gw.host)
        limit = s.job.max_payload_bytes + MESSAGE_OVERHEAD_BYTES
        api_calls = gw.max_concurrent_rpcs or concurrent_rpcs_for(memory_bytes(), limit)
        inner = Client(s, start="beginning", max_payload_bytes=s.job.max_payload_bytes)
        self.client = await AsyncClient(client=inner).start()
        record = None
        if gw.metrics_port:
            self.metrics = GatewayMetrics()
            self.metrics_port = self.metrics.serve(gw.host, gw.metrics_port)
            self.metrics.store.set_function(lambda: len(inner.store))
            self.metrics.lag.set_function(lambda: (inner.feed.lag or 0) if inner.feed is not None else 0)
            self.metrics.read.set_function(lambda: inner.feed.records if inner.feed is not None else 0)
            record = self.metrics.record
        self.gatekeeper = Gatekeeper(tokens, api_calls, gw.max_health_calls, gw.max_stream_s, record,
                                     health_watches=gw.max_health_watches)
        if self.metrics is not None:
            g = self.gatekeeper
            self.metrics.watch_budgets((g.api, g.health, g.watches))
        self.server = grpc.aio.server(
            interceptors=[self.gatekeeper],
            # A safety net behind the gatekeeper's budgets (it refuses first, and at once).
            maximum_concurrent_rpcs=api_calls + gw.max_health_calls + gw.max_health_watches,
            options=[
                ("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", _MAX_SEND_BYTES),
                ("grpc.max_concurrent_streams", gw.max_streams_per_connection),
                ("grpc.max_connection_idle_ms", int(gw.idle_timeout_s * 1000)),
                ("grpc.max_connection_age_ms", int(gw.max_connection_age_s * 1000)),
                ("grpc.max_connection_age_grace_ms", int((gw.max_stream_s + 10) * 1000)),
            ],
        )
        pb_grpc.add_InferenceServicer_to_server(InferenceServicer(self.client, gw, redactor(s)), self.server)
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
        log.info("gateway: %d identities; at most %d API calls, %d health checks and %d health watches",
                 len(tokens), api_calls, gw.max_health_calls, gw.max_health_watches)
        if gw.health_port:
            await self._start_health_port(gw.health_port)
        self._watch = asyncio.create_task(self._serving_when_caught_up(inner))
        return self.port

    async def _start_health_port(self, port: int) -> None:
        """The health service alone, plaintext, on ``port`` with a call budget of its own, so
        that probes neither need TLS nor compete with the API's calls (and cannot exhaust them)."""
        gw = self.settings.gateway
        self.health_server = grpc.aio.server(
            interceptors=[Gatekeeper(TokenTable([]), 0, HEALTH_PORT_CONCURRENT_RPCS, gw.max_stream_s)],
            maximum_concurrent_rpcs=2 * HEALTH_PORT_CONCURRENT_RPCS + 1,
            options=[("grpc.max_receive_message_length", 1024),
                     ("grpc.max_concurrent_streams", gw.max_streams_per_connection),
                     ("grpc.max_connection_idle_ms", int(gw.idle_timeout_s * 1000))],
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
"""Checks in progress on the health-only port (``gateway.health_port``; probes make one each),
and as many watches."""


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
        f"{len(gateway.gatekeeper.tokens) if gateway.gatekeeper else 0} token(s)"
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
