"""The gateway's one interceptor: who calls, how many calls of each kind, how long a stream
lives, and what each call cost (metrics).

Every call's handler is turned into one that takes its request as a stream, so that this code
runs as soon as the call's headers are in, *before* its message is read: a call refused
(no or wrong token, budget spent) costs its headers, never its body (up to the payload limit).
Checking and counting happen with no ``await`` in between, so the budgets are exact however
many calls arrive at once.

Three budgets: health ``Check`` calls (open to all; what probes call) have
``max_health_calls``, health ``Watch`` streams (open to all, never ending by themselves)
``max_health_watches``, everything else ``max_concurrent_rpcs``: no number of open watches can
shut out the API or fail the probes. Streams (``StreamResults``, ``Watch``) end after
``max_stream_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from aimass.gateway.auth import ANONYMOUS, HEALTH_PREFIX, Identity, TokenTable

log = logging.getLogger("aimass.gateway")

CALLER: contextvars.ContextVar[Identity] = contextvars.ContextVar("aimass_gateway_caller", default=ANONYMOUS)
"""The identity of the call being served (set by :class:`Gatekeeper` around the handler)."""

Record = Callable[[str, str, float], None]
#: Bounds of the memory-sized default of ``max_concurrent_rpcs``.
AUTO_RPCS_MIN, AUTO_RPCS_MAX = 64, 10_000
WATCH_METHOD = f"{HEALTH_PREFIX}Watch"
#: Services only an admin identity may call.
ADMIN_PREFIXES = ("/aimass.v1.Control/",)
UNAUTHENTICATED_MESSAGE = "missing or wrong bearer token: send metadata 'authorization: Bearer <token>'"


def concurrent_rpcs_for(memory_bytes: int, per_call_bytes: int) -> int:
    """Calls in progress that a quarter of ``memory_bytes`` holds when each holds ``per_call_bytes``
    (the largest request it may carry), between :data:`AUTO_RPCS_MIN` and :data:`AUTO_RPCS_MAX`."""
    return max(AUTO_RPCS_MIN, min(AUTO_RPCS_MAX, memory_bytes // 4 // max(per_call_bytes, 1)))


def memory_bytes() -> int:
    """The memory this process may use: the machine's, or its cgroup's limit when lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = open(limit_file).read().strip()  # noqa: SIM115 - a one-line read
        except OSError:
            continue
        if raw.isdigit():
            total = min(total, int(raw))
    return total


class Budget:
    """Calls in progress of one kind, at most ``limit``."""

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.limit = limit
        self.in_progress = 0
        self.refused = 0

    def take(self) -> bool:
        """Count one more call, unless the budget is spent (no ``await`` here: exact)."""
        if self.in_progress >= self.limit:
            self.refused += 1
            return False
        self.in_progress += 1
        return True

    def give(self) -> None:
        self.in_progress -= 1


class Gatekeeper(grpc.aio.ServerInterceptor):
    """Authenticate, admit within the budgets, bound stream age, record metrics.

    Args:
        tokens: The identities (empty: every caller is :data:`ANONYMOUS`).
        api_calls: Budget of calls that are not health calls.
        health_calls: Budget of health ``Check`` calls.
        max_stream_s: Age at which a response stream is ended with DEADLINE_EXCEEDED.
        record: ``record(method, code, seconds)`` for every call, refused ones too; None: none.
        health_watches: Budget of health ``Watch`` streams (None: ``health_calls``).
    """

    def __init__(self, tokens: TokenTable, api_calls: int, health_calls: int, max_stream_s: float,
                 record: Record | None = None, health_watches: int | None = None) -> None:
        self.tokens = tokens
        self.api = Budget("api", api_calls)
        self.health = Budget("health check", health_calls)
        self.watches = Budget("health watch", health_calls if health_watches is None else health_watches)
        self.max_stream_s = max_stream_s
        self.record = record

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming:  # unknown method; the gateway has no client streams
            return handler
        method = str(handler_call_details.method)  # type: ignore[attr-defined]
        metadata = handler_call_details.invocation_metadata or ()  # type: ignore[attr-defined]
        is_health = method.startswith(HEALTH_PREFIX)
        identity = ANONYMOUS if is_health else self.tokens.identify(
            next((str(v) for k, v in metadata if k == "authorization"), ""))
        budget = (self.watches if method == WATCH_METHOD else self.health) if is_health else self.api
        codecs = {"request_deserializer": handler.request_deserializer,
                  "response_serializer": handler.response_serializer}
        if handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(
                self._streaming(handler.unary_stream, method, identity, budget), **codecs)
        return grpc.stream_unary_rpc_method_handler(
            self._unary(handler.unary_unary, method, identity, budget), **codecs)

    async def _admit(self, context: grpc.aio.ServicerContext, method: str, identity: Identity | None,
                     budget: Budget) -> None:
        if identity is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)
        elif not identity.admin and method.startswith(ADMIN_PREFIXES):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                f"{method.rsplit('/', 1)[-1]} needs an admin token (the Control service changes "
                                "what every tenant is served)")
        if not budget.take():
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"the gateway has {budget.limit} {budget.name} calls in progress: try again later")

    @contextlib.asynccontextmanager
    async def _served(self, method: str, context: grpc.aio.ServicerContext, identity: Identity | None,
                      budget: Budget) -> AsyncIterator[Identity]:
        """Admit the call (or abort it), hold its place in ``budget`` and record it, refused or not."""
        started, code, taken = time.perf_counter(), "OK", False
        try:
            await self._admit(context, method, identity, budget)
            taken = True
            assert identity is not None
            CALLER.set(identity)  # the call's own task context: no reset needed
            yield identity
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        except Exception:
            code = _code(context, "UNKNOWN")
            raise
        finally:
            if taken:
                budget.give()
            self._record(method, context, code, started)

    def _unary(self, behavior: Any, method: str, identity: Identity | None, budget: Budget) -> Any:
        async def call(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
            async with self._served(method, context, identity, budget):
                answer = behavior(await _one(requests, context), context)
                return await answer if asyncio.iscoroutine(answer) else answer

        return call

    def _streaming(self, behavior: Any, method: str, identity: Identity | None, budget: Budget) -> Any:
        async def stream(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> None:
            async with self._served(method, context, identity, budget):
                responses = _responses(behavior(await _one(requests, context), context), context)
                try:
                    await asyncio.wait_for(responses, self.max_stream_s)
                except TimeoutError:
                    await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                                        f"stream open for {self.max_stream_s:g} s, the gateway's limit "
                                        "(gateway.max_stream_s): open a new one")

        return stream

    def _record(self, method: str, context: grpc.aio.ServicerContext, code: str, started: float) -> None:
        if self.record is not None:
            self.record(method, _code(context, "OK") if code == "OK" else code, time.perf_counter() - started)


async def _one(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
    """The single request message of a unary-request call."""
    async for request in requests:
        return request
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the call carried no request message")


async def _responses(produced: Any, context: grpc.aio.ServicerContext) -> None:
    """Run a response-streaming handler to its end, whichever of grpc's styles it has: an async
    generator, a plain generator, or a coroutine that writes with ``context.write`` (the health
    servicer's ``Watch``)."""
    if asyncio.iscoroutine(produced):
        await produced
    elif hasattr(produced, "__aiter__"):
        async for item in produced:
            await context.write(item)
    else:
        for item in produced:
            await context.write(item)


def _code(context: grpc.aio.ServicerContext, default: str) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    return default
