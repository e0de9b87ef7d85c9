"""Bearer-token check for the gateway: ``authorization: Bearer <token>`` metadata.

The health service stays open, so that load balancers and orchestrators can probe it.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

HEALTH_PREFIX = "/grpc.health.v1.Health/"


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuse calls without the right bearer token with UNAUTHENTICATED."""

    def __init__(self, token: str, open_prefixes: tuple[str, ...] = (HEALTH_PREFIX,)) -> None:
        if not token:
            raise ValueError("an empty token would accept every caller")
        self._expected = f"Bearer {token}".encode()
        self._open = open_prefixes

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method  # type: ignore[attr-defined]
        if handler is None or method.startswith(self._open):
            return handler
        metadata = handler_call_details.invocation_metadata or ()  # type: ignore[attr-defined]
        given = next((str(v) for k, v in metadata if k == "authorization"), "")
        if hmac.compare_digest(given.encode(), self._expected):
            return handler
        return _refusal(handler)


_MESSAGE = "missing or wrong bearer token: send metadata 'authorization: Bearer <token>'"


async def _refuse_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, _MESSAGE)


async def _refuse_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, _MESSAGE)
    yield  # pragma: no cover - abort raises


def _refusal(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``handler`` that only refuses."""
    codecs = {"request_deserializer": handler.request_deserializer,
              "response_serializer": handler.response_serializer}
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(_refuse_stream, **codecs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(_refuse_unary, **codecs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(_refuse_stream, **codecs)
    return grpc.unary_unary_rpc_method_handler(_refuse_unary, **codecs)
