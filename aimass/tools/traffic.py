"""Producing requests to and reading results from the topics with a plain Kafka client.

Used by the demo, the integration tests and the benchmarks. The full client library (submit
now, read later, asyncio) builds on the same codec.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from aimass.contract.codec import Codec, DecodeError
from aimass.contract.messages import InferenceRequest, InferenceResult, Tensor, now_ms
from aimass.kafka_config import python_client_config
from aimass.settings import KafkaSettings

#: Where the helpers connect: a ``host:port`` (plaintext), or Kafka settings (their bootstrap,
#: with the TLS and SASL of their ``client_properties``).
Broker = str | KafkaSettings



def quiet_kafka_logs() -> None:
    """kafka-python logs every reconnect at WARNING: keep its loggers to errors (the demo and the
    tests call this when they make a client, not at import)."""
    for name in ("kafka", "kafka.conn", "kafka.client", "kafka.coordinator", "kafka.consumer"):
        logging.getLogger(name).setLevel(logging.ERROR)


def make_request(model: str, inputs: dict[str, np.ndarray], version: str | None = None,
                 request_id: str | None = None, deadline_ms: int | None = None) -> InferenceRequest:
    """A request for ``model`` on named numpy ``inputs`` (a fresh uuid4 id unless given)."""
    return InferenceRequest(
        request_id=request_id or str(uuid.uuid4()),
        model=model,
        version=version,
        inputs=tuple(Tensor.from_numpy(name, array) for name, array in inputs.items()),
        created_at_ms=now_ms(),
        deadline_ms=deadline_ms,
    )


def _connection(broker: Broker, config: dict[str, Any]) -> dict[str, Any]:
    """kafka-python arguments naming ``broker``; ``config`` wins over the derived ones."""
    quiet_kafka_logs()
    if isinstance(broker, str):
        return {"bootstrap_servers": broker, **config}
    return {"bootstrap_servers": broker.bootstrap, **python_client_config(broker), **config}


def producer(bootstrap: Broker, **config: Any) -> Any:
    """A batching kafka-python producer (acks=all); ``config``: more kafka-python arguments."""
    from kafka import KafkaProducer

    return KafkaProducer(acks="all", linger_ms=5, batch_size=256 * 1024, max_request_size=8 * 1024 * 1024,
                         **_connection(bootstrap, config))


def send(prod: Any, topic: str, values: Iterable[bytes], keys: Iterable[bytes | None] | None = None) -> int:
    """Send raw values (keys optional) and flush; returns how many were sent."""
    count = 0
    key_iter = iter(keys) if keys is not None else None
    for value in values:
        key = next(key_iter) if key_iter is not None else None
        prod.send(topic, value=value, key=key)
        count += 1
    prod.flush()
    return count


def send_requests(prod: Any, codec: Codec, topic: str, requests: Sequence[InferenceRequest]) -> None:
    """Encode and send requests, keyed by request id."""
    send(prod, topic, (codec.encode_request(r) for r in requests), (r.request_id.encode() for r in requests))


def send_paced(bootstrap: Broker, codec: Codec, topic: str, requests: Iterable[InferenceRequest], rate: float,
               stop: threading.Event | None = None, sent: list[str] | None = None) -> int:
    """Produce ``requests`` at ``rate`` per second until they run out or ``stop`` is set.

    The id of each request is appended to ``sent`` as it goes (so another thread can follow);
    returns how many were sent. Meant to run on its own thread.
    """
    prod = producer(bootstrap)
    start = time.monotonic()
    count = 0
    try:
        for request in requests:
            if stop is not None and stop.is_set():
                break
            delay = start + count / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            prod.send(topic, value=codec.encode_request(request))
            if sent is not None:
                sent.append(request.request_id)
            count += 1
        prod.flush()
    finally:
        prod.close()
    return count


def start_paced(bootstrap: Broker, codec: Codec, topic: str, requests: Iterable[InferenceRequest],
                rate: float) -> threading.Thread:
    """:func:`send_paced` on a daemon thread of its own, started (join it to wait for the end)."""
    sender = threading.Thread(target=send_paced, daemon=True, args=(bootstrap, codec, topic, requests, rate))
    sender.start()
    return sender


def consumer(bootstrap: Broker, topic: str, from_beginning: bool = True, **config: Any) -> Any:
    """A read_committed consumer of ``topic`` with no group (assigned every partition)."""
    from kafka import KafkaConsumer, TopicPartition

    cons = KafkaConsumer(isolation_level="read_committed", enable_auto_commit=False, consumer_timeout_ms=500,
                         fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=16 * 1024 * 1024,
                         **_connection(bootstrap, config))
    parts = cons.partitions_for_topic(topic) or set()
    deadline = time.monotonic() + 10
    while not parts and time.monotonic() < deadline:
        time.sleep(0.2)
        parts = cons.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    cons.assign(tps)
    if from_beginning:
        cons.seek_to_beginning(*tps)
    else:
        cons.seek_to_end(*tps)
    for tp in tps:  # seeks are lazy: resolve them now, not at the first poll
        cons.position(tp)
    return cons


def collect(cons: Any, decode: Callable[[bytes], Any], until: Callable[[list[Any]], bool],
            timeout_s: float, on_record: Callable[[Any], None] | None = None) -> list[Any]:
    """Poll ``cons`` and decode values until ``until(collected)`` holds or the timeout passes."""
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not until(out):
        batches = cons.poll(timeout_ms=200, max_records=5000)
        for records in batches.values():
            for record in records:
                item = decode(record.value)
                out.append(item)
                if on_record is not None:
                    on_record(item)
    return out


def collect_results(cons: Any, codec: Codec, wanted: set[str], timeout_s: float,
                    on_result: Callable[[InferenceResult], None] | None = None) -> dict[str, InferenceResult]:
    """Read results until every id in ``wanted`` has one (first result per id kept)."""
    found: dict[str, InferenceResult] = {}

    def keep(result: Any) -> None:
        if result is not None and result.request_id in wanted and result.request_id not in found:
            found[result.request_id] = result
            if on_result is not None:
                on_result(result)

    def decode(value: bytes) -> InferenceResult | None:
        try:
            return codec.decode_result(value)
        except DecodeError:
            return None

    collect(cons, decode, lambda _: len(found) >= len(wanted), timeout_s, keep)
    return found


def count_results(cons: Any, codec: Codec, wanted: set[str], timeout_s: float, linger_s: float,
                  tick: Callable[[int], None] | None = None,
                  on_result: Callable[[InferenceResult], None] | None = None,
                  ) -> tuple[dict[str, InferenceResult], Counter[str]]:
    """Read results of ``wanted`` until each has one (or ``timeout_s``), then ``linger_s`` more
    (a duplicate shows up with one of the next checkpoints); the last result per id and how many
    arrived per id. ``tick(results so far)`` runs before each poll (a fault test kills there),
    ``on_result`` on each result of ``wanted`` as it arrives."""
    results: dict[str, InferenceResult] = {}
    counts: Counter[str] = Counter()
    deadline, linger_until = time.monotonic() + timeout_s, None
    while linger_until is None or time.monotonic() < linger_until:
        if linger_until is None and (len(results) >= len(wanted) or time.monotonic() >= deadline):
            linger_until = time.monotonic() + linger_s
        if tick is not None:
            tick(len(results))
        for records in cons.poll(timeout_ms=200).values():
            for record in records:
                result = codec.decode_result(record.value)
                if result.request_id in wanted:
                    counts[result.request_id] += 1
                    results[result.request_id] = result
                    if on_result is not None:
                        on_result(result)
    return results, counts


def serve(kafka: KafkaSettings, codec: Codec, requests: Sequence[InferenceRequest],
          timeout_s: float = 90.0) -> dict[str, InferenceResult]:
    """Send ``requests`` to the requests topic and collect their results (by id) from the results
    topic, reading from its end as it was before sending."""
    cons = consumer(kafka, kafka.results_topic, from_beginning=False)
    prod = producer(kafka)
    try:
        send_requests(prod, codec, kafka.requests_topic, requests)
        return collect_results(cons, codec, {r.request_id for r in requests}, timeout_s=timeout_s)
    finally:
        prod.close()
        cons.close()
