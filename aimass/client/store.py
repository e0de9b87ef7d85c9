"""A bounded, expiring, thread-safe map from request id to result, with waiters.

Filled by one background consumer of the results topic; read by the client library, the
asyncio client and the gRPC gateway. Bounded three ways: at most ``max_size`` entries and
``max_bytes`` bytes of them (the oldest go first), and at most ``ttl_s`` seconds per entry, so
a long-running gateway keeps a fixed memory footprint whatever the traffic.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Literal

from aimass.client.errors import ClientError
from aimass.contract.messages import InferenceResult

log = logging.getLogger("aimass.client")

Entry = InferenceResult | ClientError
Listener = Callable[[InferenceResult], None]
FailureListener = Callable[[str, ClientError], None]
State = Literal["done", "pending", "unknown"]


#: What an entry costs beyond its ids, tensors' data and texts (objects, dict slots), roughly.
ENTRY_OVERHEAD_BYTES = 600


def entry_bytes(request_id: str, entry: Entry) -> int:
    """About what ``entry`` holds in memory: its data, texts and a fixed overhead per object."""
    size = ENTRY_OVERHEAD_BYTES + 2 * len(request_id)
    if isinstance(entry, InferenceResult):
        size += len(entry.error or "") + len(entry.model)
        size += sum(len(t.data) + len(t.name) + 8 * len(t.shape) + 200 for t in entry.outputs)
    else:
        size += len(str(entry))
    return size


class Subscription:
    """Results as they arrive, from the moment of :meth:`ResultStore.subscribe` on.

    Bounded: when the reader falls more than ``maxsize`` results behind, newer results are
    dropped and counted in :attr:`dropped` rather than growing memory without limit.
    """

    def __init__(self, store: ResultStore, maxsize: int) -> None:
        self._store = store
        self._queue: queue.Queue[InferenceResult] = queue.Queue(maxsize)
        self.dropped = 0
        """Results not delivered because the reader was too far behind."""

    def offer(self, result: InferenceResult) -> None:
        """Queue ``result`` for the reader (called by the store)."""
        try:
            self._queue.put_nowait(result)
        except queue.Full:
            self.dropped += 1

    def get(self, timeout: float | None = None) -> InferenceResult | None:
        """The next result, or None when none arrives within ``timeout`` seconds."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def __iter__(self) -> Iterator[InferenceResult]:
        while True:
            item = self.get(timeout=0.5)
            if item is not None:
                yield item

    def close(self) -> None:
        """Stop receiving results."""
        self._store.remove_listener(self.offer)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ResultStore:
    """Results keyed by request id, bounded in count and age, with blocking waits.

    Args:
        max_size: Most entries kept; putting one more drops the oldest.
        ttl_s: Seconds an entry stays readable after it was put.
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(self, max_size: int = 100_000, ttl_s: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic, max_bytes: int = 512 * 1024 * 1024) -> None:
        if max_size < 1 or ttl_s <= 0 or max_bytes < 1:
            raise ValueError("max_size and max_bytes must be >= 1 and ttl_s > 0")
        self.max_size = max_size
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, Entry, int]] = OrderedDict()
        self.bytes = 0
        """Bytes the entries hold (:func:`entry_bytes`)."""
        self._pending: OrderedDict[str, float] = OrderedDict()
        self._waiters: dict[str, list[threading.Event]] = {}
        self._listeners: list[Listener] = []
        self._failure_listeners: list[FailureListener] = []
        self.evicted = 0
        """Entries dropped to respect ``max_size`` (not counting expired ones)."""

    # -- writing ---------------------------------------------------------------------------

    def put(self, result: InferenceResult) -> bool:
        """Keep ``result`` under its request id (a later one replaces an earlier one), wake its
        waiters and tell the listeners. Returns False for a result without a request id."""
        if result.request_id is None:
            return False
        self._set(result.request_id, result)
        for listener in list(self._listeners):
            try:
                listener(result)
            except Exception:  # a broken listener must not stop the feed
                log.exception("result listener failed")
        return True

    def fail(self, request_id: str, error: ClientError) -> None:
        """Record that ``request_id`` will get no result (e.g. Kafka refused it); waiters wake
        and :meth:`get` raises ``error``."""
        self._set(request_id, error)
        for listener in list(self._failure_listeners):
            try:
                listener(request_id, error)
            except Exception:
                log.exception("failure listener failed")

    def expect(self, request_id: str) -> None:
        """Note that ``request_id`` was submitted and its result is awaited (see :meth:`state`)."""
        with self._lock:
            now = self._clock()
            if request_id not in self._entries:
                self._pending[request_id] = now + self.ttl_s
                self._pending.move_to_end(request_id)
            self._trim(now)

    def _set(self, request_id: str, entry: Entry) -> None:
        with self._lock:
            now = self._clock()
            size = entry_bytes(request_id, entry)
            replaced = self._entries.pop(request_id, None)
            if replaced is not None:
                self.bytes -= replaced[2]
            self._entries[request_id] = (now + self.ttl_s, entry, size)
            self.bytes += size
            self._pending.pop(request_id, None)
            self._trim(now)
            waiters = self._waiters.pop(request_id, ())
        for event in waiters:
            event.set()

    def _trim(self, now: float) -> None:
        # Insertion order is expiry order (one TTL for all), so expired entries are at the front.
        while self._entries and next(iter(self._entries.values()))[0] <= now:
            self.bytes -= self._entries.popitem(last=False)[1][2]
        while self._pending and next(iter(self._pending.values())) <= now:
            self._pending.popitem(last=False)
        while len(self._entries) > self.max_size or (self.bytes > self.max_bytes and len(self._entries) > 1):
            self.bytes -= self._entries.popitem(last=False)[1][2]
            self.evicted += 1
        while len(self._pending) > self.max_size:
            self._pending.popitem(last=False)

    # -- reading ---------------------------------------------------------------------------

    def get(self, request_id: str) -> InferenceResult | None:
        """The result of ``request_id``, or None when there is none (yet, or any more).

        Raises:
            ClientError: The error recorded with :meth:`fail` for this id.
        """
        with self._lock:
            entry = self._live(request_id)
        if isinstance(entry, ClientError):
            raise entry
        return entry

    def _live(self, request_id: str) -> Entry | None:
        found = self._entries.get(request_id)
        if found is None:
            return None
        if found[0] <= self._clock():
            del self._entries[request_id]
            self.bytes -= found[2]
            return None
        return found[1]

    def state(self, request_id: str) -> State:
        """``done`` (a result or error is here), ``pending`` (expected, not yet here) or
        ``unknown`` (never seen, or expired)."""
        with self._lock:
            if self._live(request_id) is not None:
                return "done"
            expires = self._pending.get(request_id)
            return "pending" if expires is not None and expires > self._clock() else "unknown"

    def wait(self, request_id: str, timeout: float | None) -> InferenceResult | None:
        """Block until ``request_id`` has a result or ``timeout`` seconds pass (None: no limit).

        Returns:
            The result, or None on timeout.

        Raises:
            ClientError: The error recorded with :meth:`fail` for this id.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                entry = self._live(request_id)
                if entry is None:
                    event = threading.Event()
                    self._waiters.setdefault(request_id, []).append(event)
            if entry is not None:
                if isinstance(entry, ClientError):
                    raise entry
                return entry
            remaining = None if deadline is None else deadline - time.monotonic()
            woke = event.wait(remaining) if remaining is None or remaining > 0 else False
            if not woke:
                with self._lock:
                    waiters = self._waiters.get(request_id, [])
                    if event in waiters:
                        waiters.remove(event)
                    if not waiters:
                        self._waiters.pop(request_id, None)
                    entry = self._live(request_id)
                if isinstance(entry, ClientError):
                    raise entry
                return entry

    def results(self) -> list[InferenceResult]:
        """Every live result, oldest first."""
        with self._lock:
            now = self._clock()
            return [e for exp, e, _ in self._entries.values() if exp > now and isinstance(e, InferenceResult)]

    def waiting(self) -> int:
        """Threads blocked in :meth:`wait` (for tests and metrics)."""
        with self._lock:
            return sum(len(w) for w in self._waiters.values())

    def __len__(self) -> int:
        with self._lock:
            self._trim(self._clock())
            return len(self._entries)

    # -- listening -------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(result)`` for every result put from now on (in the putting thread;
        it must be quick and must not call back into the store's writers)."""
        with self._lock:
            self._listeners = [*self._listeners, listener]

    def remove_listener(self, listener: Listener) -> None:
        """Undo :meth:`add_listener` (no error if absent)."""
        with self._lock:
            self._listeners = [x for x in self._listeners if x != listener]

    def add_failure_listener(self, listener: FailureListener) -> None:
        """Call ``listener(request_id, error)`` for every :meth:`fail` from now on."""
        with self._lock:
            self._failure_listeners = [*self._failure_listeners, listener]

    def remove_failure_listener(self, listener: FailureListener) -> None:
        """Undo :meth:`add_failure_listener` (no error if absent)."""
        with self._lock:
            self._failure_listeners = [x for x in self._failure_listeners if x != listener]

    def subscribe(self, maxsize: int = 10_000) -> Subscription:
        """A :class:`Subscription` to results put from now on."""
        sub = Subscription(self, maxsize)
        self.add_listener(sub.offer)
        return sub
