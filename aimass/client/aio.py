"""The asyncio client: the same client, with awaitable submits and results.

The blocking parts (connecting, producing) run in a thread; each awaited result is an asyncio
future resolved from the feed thread, so thousands of pending results cost no thread each.

    async with AsyncClient() as client:
        rid = await client.submit("digits", {"pixels": x})
        result = await client.result(rid, timeout=10)
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import numpy as np

from aimass.client import validation
from aimass.client.client import Client
from aimass.client.errors import ClientError, ResultTimeout, Unavailable
from aimass.contract.messages import InferenceResult, Tensor
from aimass.settings import Settings


class AsyncClient:
    """An asyncio front of :class:`Client` (same arguments, or an existing ``client``).

    Create it inside a running event loop; results are delivered to that loop.
    """

    def __init__(self, settings: Settings | str | None = None, *, client: Client | None = None,
                 **options: Any) -> None:
        self._settings = settings
        self._options = options
        self._client = client
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._futures: dict[str, list[asyncio.Future[InferenceResult]]] = {}
        self._queues: list[asyncio.Queue[InferenceResult]] = []
        """Streams of every result."""
        self._by_id: dict[str, list[asyncio.Queue[InferenceResult]]] = {}
        """Streams of listed ids, indexed by id: a result is handed only to the streams waiting for it."""

    @property
    def client(self) -> Client:
        """The underlying blocking client (after :meth:`start`)."""
        if self._client is None:
            raise RuntimeError("AsyncClient not started: use `async with AsyncClient() as c` or `await c.start()`")
        return self._client

    async def start(self) -> AsyncClient:
        """Build the blocking client in a thread and listen to its store."""
        self._loop = asyncio.get_running_loop()
        if self._client is None:
            self._client = await asyncio.to_thread(Client, self._settings, **self._options)
        self._client.store.add_listener(self._on_result)
        self._client.store.add_failure_listener(self._on_failure)
        return self

    async def __aenter__(self) -> AsyncClient:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop listening and close the blocking client."""
        if self._client is not None:
            self._client.store.remove_listener(self._on_result)
            self._client.store.remove_failure_listener(self._on_failure)
            await asyncio.to_thread(self._client.close)

    # -- submitting ------------------------------------------------------------------------

    async def submit(self, model: str, inputs: Mapping[str, np.ndarray], version: str | None = None,
                     deadline_ms: int | None = None, *, request_id: str | None = None) -> str:
        """Like :meth:`Client.submit`; returns as soon as the request is queued for Kafka."""
        tensors = validation.tensors_from_numpy(inputs)
        return await self.submit_tensors(model, tensors, version, deadline_ms, request_id=request_id)

    async def submit_tensors(self, model: str, tensors: Sequence[Tensor], version: str | None = None,
                             deadline_ms: int | None = None, *, request_id: str | None = None,
                             priority: int = 0, ack_timeout: float | None = None) -> str:
        """Submit wire tensors; with ``ack_timeout``, return only once Kafka has the request.

        Raises:
            InvalidRequest: Refused before reaching Kafka.
            Unavailable: Kafka did not take it within the client's ``kafka_timeout_ms`` (or
                did not acknowledge it within ``ack_timeout`` seconds).
        """
        client = self.client
        request, data = client.prepare(model, tensors, version, deadline_ms, request_id, priority)
        future = await asyncio.to_thread(client.send, request.request_id, data)
        if ack_timeout is not None:
            await self._acknowledged(future, ack_timeout)
        return request.request_id

    async def _acknowledged(self, kafka_future: Any, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def settle(error: BaseException | None) -> None:
            if not done.done():
                if error is None:
                    done.set_result(None)
                else:
                    done.set_exception(Unavailable(f"Kafka refused the request: {type(error).__name__}: {error}"))

        kafka_future.add_callback(lambda _: loop.call_soon_threadsafe(settle, None))
        kafka_future.add_errback(lambda exc: loop.call_soon_threadsafe(settle, exc))
        try:
            await asyncio.wait_for(done, timeout)
        except TimeoutError:
            raise Unavailable(f"Kafka did not acknowledge the request within {timeout:g} s") from None

    # -- reading ---------------------------------------------------------------------------

    async def result(self, request_id: str, timeout: float | None = 30.0) -> InferenceResult:
        """Await the result of ``request_id``.

        Raises:
            ResultTimeout: None arrived within ``timeout`` seconds.
        """
        future = self._future_for(request_id)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise ResultTimeout(request_id, -1.0 if timeout is None else timeout) from None
        finally:
            self._forget(request_id, future)

    def _future_for(self, request_id: str) -> asyncio.Future[InferenceResult]:
        assert self._loop is not None
        future: asyncio.Future[InferenceResult] = self._loop.create_future()
        with self._lock:  # register first, then look: a result put in between is not missed
            self._futures.setdefault(request_id, []).append(future)
        try:
            found = self.client.store.get(request_id)
        except ClientError as exc:  # an error recorded for this id (delivery failed)
            self._forget(request_id, future)
            future.set_exception(exc)
            return future
        if found is not None and not future.done():
            future.set_result(found)
        return future

    def _forget(self, request_id: str, future: asyncio.Future[InferenceResult]) -> None:
        with self._lock:
            waiting = self._futures.get(request_id)
            if waiting and future in waiting:
                waiting.remove(future)
                if not waiting:
                    del self._futures[request_id]

    async def results(self, request_ids: Sequence[str] | None = None, *, include_stored: bool = False,
                      maxsize: int = 10_000) -> AsyncIterator[InferenceResult]:
        """Results as they arrive.

        Args:
            request_ids: Only these (those already in the store first); ends when all were
                yielded. None: every result arriving from now on, without end.
            include_stored: With no ids, first yield the results already in the store.
            maxsize: A reader this many results behind loses the newest ones.
        """
        queue: asyncio.Queue[InferenceResult] = asyncio.Queue(maxsize)
        wanted = None if request_ids is None else set(request_ids)
        with self._lock:  # listen first, then look in the store: nothing falls in between
            if wanted is None:
                self._queues = [*self._queues, queue]
            else:
                for rid in wanted:
                    self._by_id.setdefault(rid, []).append(queue)
        listed = frozenset(wanted or ())
        try:
            if wanted is not None:
                for rid in sorted(wanted):
                    found = self.client.store.get(rid)
                    if found is not None:
                        wanted.discard(rid)
                        yield found
            elif include_stored:
                for found in self.client.store.results():
                    yield found
            while wanted is None or wanted:
                item = await queue.get()
                if wanted is None:
                    yield item
                elif item.request_id in wanted:
                    wanted.discard(item.request_id)
                    yield item
        finally:
            with self._lock:
                self._queues = [q for q in self._queues if q is not queue]
                for rid in listed:
                    streams = [q for q in self._by_id.get(rid, ()) if q is not queue]
                    if streams:
                        self._by_id[rid] = streams
                    else:
                        self._by_id.pop(rid, None)

    def _on_result(self, result: InferenceResult) -> None:
        # Called in the feed thread for every result: hop to the loop only when someone listens.
        with self._lock:
            rid = result.request_id
            wanted = rid in self._futures or rid in self._by_id or bool(self._queues)
        if wanted and self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._dispatch, result)

    def _on_failure(self, request_id: str, error: Exception) -> None:
        with self._lock:
            wanted = request_id in self._futures
        if wanted and self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._fail, request_id, error)

    def _fail(self, request_id: str, error: Exception) -> None:
        with self._lock:
            futures = self._futures.pop(request_id, [])
        for future in futures:
            if not future.done():
                future.set_exception(error)

    def _dispatch(self, result: InferenceResult) -> None:
        with self._lock:
            futures = self._futures.pop(result.request_id or "", [])
            queues = [*self._queues, *self._by_id.get(result.request_id or "", ())]
        for future in futures:
            if not future.done():
                future.set_result(result)
        for queue in queues:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(result)
