"""What a fault campaign reads back: results and dead letters, on a thread of their own.

The reader starts at the end of the results and dead-letter topics (so earlier traffic on a
shared stack is left out), with ``read_committed`` in exactly-once mode and
``read_uncommitted`` in at-least-once mode, and keeps polling through broker restarts until it
is stopped. Only results whose request id starts with the campaign's prefix (or is one of
:attr:`Reader.also`, ids of records from outside the campaign) are kept; every
dead letter is kept (they are matched to what was sent by the digest of their bytes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from aimass.contract.codec import Codec, DecodeError
from aimass.contract.messages import DeadLetter, InferenceResult, Status
from aimass.faults.oracle import digest
from aimass.settings import Settings


class Reader:
    """Reads the job's outputs into lists and sets; appended from its thread, read by others.

    Args:
        settings: Topics, bootstrap servers and delivery mode.
        codec: The codec of the data contract.
        prefix: Request ids of the campaign's own records start with this.
        say: Progress lines (errors the reader rides out).
    """

    def __init__(self, settings: Settings, codec: Codec, prefix: str, say: Callable[[str], None]) -> None:
        self.settings, self.codec, self.prefix, self.say = settings, codec, prefix, say
        self.results: list[InferenceResult] = []
        self.arrivals: list[float] = []
        """``time.monotonic()`` when each result of :attr:`results` was read."""
        self.dead_letters: list[DeadLetter] = []
        self.dead_keys: set[str] = set()
        """Digests of the dead letters' original bytes."""
        self.answered: set[str] = set()
        self.failed: set[str] = set()
        """Ids answered with a status other than ok."""
        self.undecodable = 0
        self.also: set[str] = set()
        """More request ids to keep results of (a ``--bad-corpus``'s); add them before sending."""
        self._stop = threading.Event()
        self._consumer: Any = None
        self._thread = threading.Thread(target=self._loop, name="faults-reader", daemon=True)

    def start(self) -> None:
        """Subscribe at the end of the topics (before anything is sent), then poll on a thread."""
        self._consumer = self._subscribe()
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and close the consumer."""
        self._stop.set()
        self._thread.join(timeout=10)
        self._consumer.close()

    def _subscribe(self) -> Any:
        from kafka import KafkaConsumer, TopicPartition

        k = self.settings.kafka
        isolation = "read_committed" if self.settings.job.delivery == "exactly-once" else "read_uncommitted"
        consumer = KafkaConsumer(
            bootstrap_servers=k.bootstrap, isolation_level=isolation, enable_auto_commit=False,
            fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=16 * 1024 * 1024,
        )
        partitions = []
        for topic in (k.results_topic, k.dead_letter_topic):
            found = consumer.partitions_for_topic(topic) or set()
            deadline = time.monotonic() + 10
            while not found and time.monotonic() < deadline:
                time.sleep(0.2)
                found = consumer.partitions_for_topic(topic) or set()
            partitions += [TopicPartition(topic, p) for p in sorted(found)]
        consumer.assign(partitions)
        consumer.seek_to_end(*partitions)
        for tp in partitions:
            consumer.position(tp)  # resolve the lazy seek now, before anything is sent
        return consumer

    def _loop(self) -> None:
        results_topic = self.settings.kafka.results_topic
        while not self._stop.is_set():
            try:
                batches = self._consumer.poll(timeout_ms=200, max_records=5000)
            except Exception as exc:  # noqa: BLE001 - a broker restart surfaces as many errors
                self.say(f"reader: {type(exc).__name__}: {exc} (retrying)")
                time.sleep(0.5)
                continue
            now = time.monotonic()
            for tp, records in batches.items():
                for record in records:
                    try:
                        self._take(tp.topic == results_topic, record.value, now)
                    except Exception as exc:  # noqa: BLE001 - one odd record must not stop the reader
                        self.undecodable += 1
                        self.say(f"reader: {type(exc).__name__}: {exc} (record skipped)")

    def _take(self, is_result: bool, value: bytes, now: float) -> None:
        try:
            if is_result:
                result = self.codec.decode_result(value)
                rid = result.request_id
                if rid is not None and (rid.startswith(self.prefix) or rid in self.also):
                    self.results.append(result)
                    self.arrivals.append(now)
                    self.answered.add(rid)
                    if result.status is not Status.OK:
                        self.failed.add(rid)
            else:
                dead = self.codec.decode_dead_letter(value)
                self.dead_letters.append(dead)
                self.dead_keys.add(digest(dead.original))
        except DecodeError:
            self.undecodable += 1
