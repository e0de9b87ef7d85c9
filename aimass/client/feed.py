"""One background thread that reads the results topic into a :class:`ResultStore`.

It starts either at the beginning of the (compacted, keyed by request id) topic, so that
every result still retained is answerable, or at "now" (by timestamp, a little before the feed
was created, so that no result of a request submitted after that can be missed even when the
broker is reached late). When the broker is not there it keeps retrying; :attr:`ResultFeed.error`
says why it is not connected.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, Literal

from aimass.client.store import ResultStore
from aimass.contract.codec import Codec, DecodeError
from aimass.contract.messages import now_ms

log = logging.getLogger("aimass.client")

Start = Literal["beginning", "now"]
#: How far before its creation a feed starting at "now" begins (producer clocks may lag).
START_MARGIN_MS = 5000
#: How often the feed measures its lag (:attr:`ResultFeed.lag`).
LAG_EVERY_S = 5.0
#: Empty polls in a row after which a feed reading from the beginning counts as caught up.
_EMPTY_POLLS_CAUGHT_UP = 5


class ResultFeed:
    """Consume ``topic`` into ``store`` in a daemon thread.

    Args:
        bootstrap: Kafka ``host:port``.
        topic: The results topic.
        store: Where results go.
        codec: Decoder of results.
        read_committed: Read only committed transactions (needed with exactly-once delivery).
        start: ``beginning`` or ``now``.
        max_age_s: Results completed longer ago than this are skipped (None: keep all).
        connect_timeout_ms: Bound of each connection attempt.
        kafka_config: Extra kafka-python arguments (TLS, SASL: see aimass/kafka_config.py).
        max_bytes: Records longer than this are skipped unread (counted in :attr:`undecodable`);
            the job never writes a larger one (``job.output_record_limit``). None: no limit.
    """

    def __init__(self, bootstrap: str, topic: str, store: ResultStore, codec: Codec, *,
                 read_committed: bool = True, start: Start = "now", max_age_s: float | None = None,
                 connect_timeout_ms: int = 5000, kafka_config: Mapping[str, Any] | None = None,
                 max_bytes: int | None = None) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.store = store
        self.codec = codec
        self.read_committed = read_committed
        self.start = start
        self.max_age_s = max_age_s
        self.connect_timeout_ms = connect_timeout_ms
        self.kafka_config = dict(kafka_config or {})
        self.max_bytes = max_bytes
        self.ready = threading.Event()
        """Set once the consumer is assigned and positioned."""
        self.caught_up = threading.Event()
        """Set once the records present at connection time have been read."""
        self.error: str | None = None
        """Why the feed is not connected, while it is not."""
        self.undecodable = 0
        """Records on the topic that were not results, or not within the bounds of one (skipped and counted)."""
        self.records = 0
        """Results read."""
        self.lag: int | None = None
        """Records on the topic not read yet (measured every few seconds by the feed's thread); None: not yet."""
        self._from_ms = now_ms() - START_MARGIN_MS
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"aimass-results-{topic}", daemon=True)

    def start_thread(self) -> ResultFeed:
        """Start reading; returns self."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading and close the consumer."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def wait_ready(self, timeout: float) -> bool:
        """Wait until positioned (and, starting from the beginning, caught up)."""
        event = self.caught_up if self.start == "beginning" else self.ready
        return event.wait(timeout)

    def _run(self) -> None:
        backoff = 0.5
        consumer = None
        while not self._stop.is_set():
            try:
                consumer = self._connect()
            except Exception as exc:  # noqa: BLE001 - kafka-python raises many types when no broker answers
                self.error = f"cannot read {self.topic} from {self.bootstrap}: {type(exc).__name__}: {exc}"
                log.warning("%s; retrying in %.1f s", self.error, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            break
        if consumer is None:
            return
        self.error = None
        try:
            self._consume(consumer)
        finally:
            consumer.close()

    def _connect(self) -> Any:
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            isolation_level="read_committed" if self.read_committed else "read_uncommitted",
            enable_auto_commit=False,
            bootstrap_timeout_ms=self.connect_timeout_ms,
            request_timeout_ms=max(self.connect_timeout_ms, 10_000),
            fetch_max_wait_ms=100,
            max_partition_fetch_bytes=16 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
            **self.kafka_config,
        )
        try:
            parts = consumer.partitions_for_topic(self.topic)
            if not parts:
                raise LookupError(f"topic {self.topic} does not exist (yet)")
            tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            if self.start == "beginning":
                consumer.seek_to_beginning(*tps)
            else:
                found = consumer.offsets_for_times({tp: self._from_ms for tp in tps})
                ends = consumer.end_offsets(tps)
                for tp in tps:
                    hit = found.get(tp)
                    consumer.seek(tp, hit.offset if hit is not None else ends[tp])
            self._ends = consumer.end_offsets(tps)
            for tp in tps:  # seeks are lazy: resolve them now, not at the first poll
                consumer.position(tp)
        except BaseException:
            consumer.close()
            raise
        self._tps = tps
        self.ready.set()
        return consumer

    def _consume(self, consumer: Any) -> None:
        empty = 0
        measured = 0.0
        while not self._stop.is_set():
            if time.monotonic() - measured >= LAG_EVERY_S:  # the consumer is this thread's alone
                measured = time.monotonic()
                ends = consumer.end_offsets(self._tps)
                self.lag = sum(max(0, ends[tp] - consumer.position(tp)) for tp in self._tps)
            batches = consumer.poll(timeout_ms=200, max_records=10_000)
            if not batches:
                empty += 1
            else:
                empty = 0
            oldest_ms = None if self.max_age_s is None else now_ms() - self.max_age_s * 1000
            for records in batches.values():
                for record in records:
                    self._take(record.value, oldest_ms)
            if not self.caught_up.is_set() and (
                empty >= _EMPTY_POLLS_CAUGHT_UP or all(consumer.position(tp) >= self._ends[tp] for tp in self._tps)
            ):
                self.caught_up.set()

    def _take(self, value: bytes | None, oldest_ms: float | None) -> None:
        if value is None:  # a tombstone
            return
        try:
            result = self.codec.decode_result(value, self.max_bytes)
        except DecodeError as exc:
            self.undecodable += 1
            if self.undecodable == 1 or self.undecodable % 1000 == 0:
                log.warning("%s: %d record(s) that are not results skipped (%s)", self.topic, self.undecodable, exc)
            return
        if oldest_ms is not None and result.completed_at_ms < oldest_ms:
            return
        self.records += 1
        self.store.put(result)

