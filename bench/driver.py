"""The load driver: produces requests, reads results, and turns both into figures.

One :class:`Collector` per run reads the run's results topic from its beginning with a
read_committed consumer in a background thread and notes, per request id, when its first
result became readable (``time.monotonic()`` in this process: the produce times are taken
with the same clock). Result values are kept and decoded only after a phase, so decoding
does not steal CPU from the system under test while it is measured.

Phases are numbered; the phase is part of every request id (see :func:`bench.workload.request_id`),
so the collector counts arrivals per phase without scanning.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from aimass.contract.codec import Codec, DecodeError
from aimass.contract.messages import Status
from bench.workload import Workload

Progress = Callable[[int, int], None]


def _phase_of(rid: str) -> int:
    try:
        return int(rid[9:13], 16)
    except ValueError:
        return -1


class TopicReader:
    """Reads a whole topic (read_committed, from the beginning) in a background thread, handing
    each record to the subclass's :meth:`note` with the time it became readable."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, name: str) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": f"{name}-{uuid.uuid4().hex[:8]}",  # required; never committed
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 5,
            "fetch.max.bytes": 64 * 1024 * 1024,
        })
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Self:
        """Start reading; returns self."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop reading and close the consumer."""
        self._stop.set()
        self._thread.join()
        self.consumer.close()

    def note(self, rid: str, value: bytes | None, now: float) -> None:
        """Account for one record keyed ``rid`` that became readable at ``now``."""
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            # consume() waits for all num_messages or the timeout: take what is there, else
            # block on poll(), which returns at the first message.
            messages = self.consumer.consume(num_messages=10_000, timeout=0)
            if not messages:
                message = self.consumer.poll(0.05)
                messages = [message] if message is not None else []
            now = time.monotonic()
            for message in messages:
                if message.error() is None:
                    key = message.key()
                    self.note(key.decode() if key else "", message.value(), now)


class Collector(TopicReader):
    """Reads every result of a topic in a background thread."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.arrivals: dict[str, float] = {}
        self.values: dict[str, bytes] = {}
        self.duplicates = 0
        self.per_phase: dict[int, int] = {}
        super().__init__(bootstrap, topic, partitions, "bench-collector")

    def note(self, rid: str, value: bytes | None, now: float) -> None:
        """Record the first result of ``rid``; count a second one as a duplicate."""
        if rid in self.arrivals:
            self.duplicates += 1
            return
        self.arrivals[rid] = now
        if value is not None:
            self.values[rid] = value
        phase = _phase_of(rid)
        self.per_phase[phase] = self.per_phase.get(phase, 0) + 1

    def wait(self, phase: int, count: int, timeout_s: float, progress: Progress | None = None) -> bool:
        """Block until ``count`` results of ``phase`` have arrived; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            got = self.per_phase.get(phase, 0)
            if progress is not None:
                progress(got, count)
            if got >= count:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)


def producer(bootstrap: str) -> Any:
    """A confluent-kafka producer for requests (acks=all, 2 ms linger, deep local queue)."""
    from confluent_kafka import Producer

    return Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 2,
        "queue.buffering.max.messages": 2_000_000,
        "queue.buffering.max.kbytes": 4 * 1024 * 1024,
        "message.max.bytes": 8 * 1024 * 1024,
    })


def _produce(prod: Any, topic: str, rid: str, value: bytes) -> None:
    while True:
        try:
            prod.produce(topic, value=value, key=rid.encode())
            return
        except BufferError:  # local queue full: let it drain
            prod.poll(0.01)


def preload(prod: Any, topic: str, workload: Workload, phase: int, count: int) -> list[str]:
    """Produce ``count`` requests of ``phase`` as fast as possible; returns their ids."""
    ids, values = workload.batch(phase, count)
    for i, (rid, value) in enumerate(zip(ids, values, strict=True)):
        _produce(prod, topic, rid, value)
        if i % 1000 == 0:
            prod.poll(0)
    prod.flush(60)
    return ids


@dataclass
class Paced:
    """What a paced phase sent: ids and the intended send time of each."""

    ids: list[str]
    sent_at: list[float]
    max_behind_s: float
    """Most the producer fell behind its schedule (large values mean the driver was starved)."""


def paced(prod: Any, topic: str, workload: Workload, phase: int, rate: float, seconds: float,
          progress: Progress | None = None) -> Paced:
    """Open-loop production at ``rate`` requests/s for ``seconds``.

    Each request's send time is its scheduled time, not the moment it left, so a stalled
    producer does not hide latency (no coordinated omission).
    """
    count = max(1, int(rate * seconds))
    ids, values = workload.batch(phase, count)
    sent_at = [0.0] * count
    start = time.monotonic() + 0.05
    sent, behind, last_report = 0, 0.0, 0.0
    while sent < count:
        now = time.monotonic()
        due = min(count, int((now - start) * rate) + 1) if now >= start else 0
        for i in range(sent, due):
            _produce(prod, topic, ids[i], values[i])
            sent_at[i] = start + i / rate
        if due > sent:
            behind = max(behind, now - sent_at[due - 1])
            sent = due
        prod.poll(0)
        if progress is not None and now - last_report > 0.5:
            progress(sent, count)
            last_report = now
        if sent < count:
            time.sleep(max(0.0, min(0.002, start + sent / rate - time.monotonic())))
    prod.flush(60)
    return Paced(ids, sent_at, behind)


def percentiles(values_ms: Sequence[float]) -> dict[str, float | None]:
    """p50, p95 and p99 (ms) of ``values_ms``; None when empty."""
    if not values_ms:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    p50, p95, p99 = np.percentile(np.asarray(values_ms), [50, 95, 99])
    return {"p50_ms": round(float(p50), 2), "p95_ms": round(float(p95), 2), "p99_ms": round(float(p99), 2)}


def served(collector: Collector, codec: Codec, ids: Sequence[str]) -> dict[str, Any]:
    """Counts check of a phase: every id answered, with status OK; mean batch size."""
    missing = [rid for rid in ids if rid not in collector.values]
    errors, batch_sizes = 0, []
    for rid in ids:
        value = collector.values.get(rid)
        if value is None:
            continue
        try:
            result = codec.decode_result(value)
        except DecodeError:
            errors += 1
            continue
        if result.status is not Status.OK:
            errors += 1
        else:
            batch_sizes.append(result.timings.batch_size)
    return {
        "sent": len(ids),
        "served": len(ids) - len(missing) - errors,
        "missing": len(missing),
        "errors": errors,
        "all_served": not missing and errors == 0,
        "mean_batch_size": round(float(np.mean(batch_sizes)), 2) if batch_sizes else None,
    }


def drain_rate(collector: Collector, ids: Sequence[str], not_before: float,
               warmup_fraction: float) -> tuple[float | None, float, float]:
    """Drain rate of a preloaded backlog: results/s over its steady part.

    The window opens once the backlog was fully produced (``not_before``) and the first
    ``warmup_fraction`` of the results have arrived, and closes at the last result; the rate
    is the results that arrived inside it over its length. Results that become readable in
    chunks (exactly-once: one transaction per checkpoint or commit) can leave no result
    strictly inside that window; it then opens at ``not_before``. Returns (rate, window
    start, window end); rate is None when no result arrived after ``not_before``.
    """
    times = np.sort(np.fromiter((collector.arrivals[rid] for rid in ids if rid in collector.arrivals), float))
    if len(times) < 2:
        return None, 0.0, 0.0
    end = float(times[-1])
    warm = float(times[min(int(len(times) * warmup_fraction), len(times) - 1)])
    for start in (max(not_before, warm), not_before):
        inside = int(len(times) - np.searchsorted(times, start, side="right"))
        if inside and end > start:
            return inside / (end - start), start, end
    return None, not_before, end


def latencies(collector: Collector, run: Paced, warmup_s: float) -> dict[str, Any]:
    """Latency from (scheduled) produce to result readable, after the warm-up seconds."""
    start = run.sent_at[0] + warmup_s
    kept = [(t, collector.arrivals[rid] - t) for rid, t in zip(run.ids, run.sent_at, strict=True)
            if t >= start and rid in collector.arrivals]
    values = [lat * 1000.0 for _, lat in kept]
    out: dict[str, Any] = {"measured": len(values), **percentiles(values)}
    # Lag not growing: the second half of the phase is not much slower than the first.
    half = len(values) // 2
    if half >= 10:
        first, second = float(np.median(values[:half])), float(np.median(values[half:]))
        out["p50_first_half_ms"], out["p50_second_half_ms"] = round(first, 2), round(second, 2)
        out["kept_up"] = second <= 1.5 * first + 250.0
    else:
        out["kept_up"] = None
    return out
