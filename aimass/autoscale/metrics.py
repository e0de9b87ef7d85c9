"""What the autoscaler looks at: one :class:`Sample` per interval, read from Kafka and Flink.

* **lag**: end offsets of the requests topic minus the offsets the job's consumer group
  committed, plus the requests waiting in the job's scheduler (``micro-batch``'s
  ``schedulerWaiting`` gauge: the job reads ahead of what it serves). Flink's Kafka source
  commits on each completed checkpoint, so the figure is at most
  ``job.checkpoint_interval_ms`` stale (and grows while the job restarts).
* **busy**: the busy share of the busiest ``batch-infer`` subtask over the last interval, from
  the per-subtask counters ``accumulateBusyTimeMs``, ``accumulateIdleTimeMs`` and
  ``accumulateBackPressuredTimeMs`` (``GET /jobs/<id>/vertices/<vid>/subtasks/<i>/metrics``):
  busy delta / delta of the three. Not ``busyTimeMsPerSecond``: Flink averages that over a
  60 s window, and after every (re)start it reads ~1000 for the first seconds and decays over
  a minute (measured: 1000, 800, 400, 270, 210 ms/s at 2.5 s steps on an idle job after a
  restart), so right after a rescale it would ask for the next one. The three counters come
  from one snapshot of the JobManager's metric fetcher (refreshed every 2 s here), so the
  ratio is exact whatever the snapshot's age; the first sample of a (re)started task has no
  busy figure.
* **latency**: Flink has no end-to-end latency gauge for us, so the collector reads the newest
  ``autoscale.latency_records`` results per partition of the results topic that completed
  since the previous sample, decodes them and takes the 90th percentile of
  ``timings.end_to_end_ms`` (request creation to result, measured by the job: it includes the
  time a request waited in Kafka, but not the exactly-once visibility delay of the result).

Nothing here imports Flink; the REST API is plain HTTP.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from aimass.contract.codec import Codec, DecodeError
from aimass.kafka_config import python_client_config
from aimass.operators import BATCH_INFER, MICRO_BATCH
from aimass.settings import Settings
from aimass.stack.flink import FlinkCluster

TIME_COUNTERS = ("accumulateBusyTimeMs", "accumulateIdleTimeMs", "accumulateBackPressuredTimeMs")
VERTEX = BATCH_INFER.name
#: The scheduler's operator (``micro-batch``), whose waiting requests count as backlog.
SCHEDULER = MICRO_BATCH.name
"""Name (part) of the job vertex whose busy time is read: the inference operator."""


@dataclass(frozen=True)
class Sample:
    """The job's load at one moment."""

    at: float
    """Wall-clock seconds (``time.time()``) when the sample was taken."""
    lag: int | None
    """Records of the requests topic not yet committed by the job's consumer group; None: unknown."""
    lag_growth_per_s: float | None
    """Change of ``lag`` per second since the previous sample; None for the first."""
    busy: float | None
    """Busy share of the busiest batch-infer subtask since the previous sample, 0..1; None: unknown."""
    latency_ms: float | None
    """90th percentile end-to-end latency of results completed since the previous sample; None: none."""
    parallelism: int
    """Parallelism of the batch-infer vertex when the sample was taken."""


def growth(previous: Sample | None, at: float, lag: int | None) -> float | None:
    """Lag change per second from ``previous`` to (``at``, ``lag``)."""
    if previous is None or previous.lag is None or lag is None or at <= previous.at:
        return None
    return (lag - previous.lag) / (at - previous.at)


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile (``share`` in 0..1) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


class NoJobError(LookupError):
    """The inference job is not running (nothing to sample)."""


class MetricsCollector:
    """Takes samples of the running job; keeps its Kafka clients open between samples (call close()).

    Args:
        settings: Where the cluster, the broker and the topics are; the job's name and group.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cluster = FlinkCluster(settings)
        self._codec = Codec(settings.paths.schemas_dir)
        self._admin: Any = None
        self._consumer: Any = None
        self._next_offset: dict[Any, int] = {}
        self._counters: dict[tuple[str, str, int], tuple[float, ...]] = {}
        self._shares: dict[tuple[str, str, int], float] = {}
        self._previous: Sample | None = None

    def close(self) -> None:
        """Close the Kafka clients."""
        for client in (self._consumer, self._admin):
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
        self._admin = self._consumer = None

    def __enter__(self) -> MetricsCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _clients(self) -> tuple[Any, Any]:
        if self._admin is None:
            from kafka import KafkaAdminClient, KafkaConsumer

            for name in ("kafka.conn", "kafka.client", "kafka.admin", "kafka.net"):
                logging.getLogger(name).setLevel(logging.ERROR)  # as the stack's admin does
            # The job's broker, with the TLS and SASL of AIMASS_KAFKA_CLIENT_PROPERTIES (the
            # local stack's own admin speaks plaintext to the local broker only).
            kafka = {"bootstrap_servers": self.settings.kafka.bootstrap, "request_timeout_ms": 5000,
                     **python_client_config(self.settings.kafka)}
            self._admin = KafkaAdminClient(client_id="aimass-autoscale-admin", **kafka)
            self._consumer = KafkaConsumer(
                isolation_level="read_committed", enable_auto_commit=False, client_id="aimass-autoscale", **kafka
            )
        return self._admin, self._consumer

    # -- Flink -----------------------------------------------------------------------------------

    def job_vertex(self) -> tuple[str, str, int]:
        """(job id, batch-infer vertex id, its parallelism) of the running job, or NoJobError."""
        job = self.cluster.running_job(self.settings.job.name)
        if job is None:
            raise NoJobError(f"no running job named {self.settings.job.name!r}")
        job_id = str(job["jid"])
        detail = self.cluster.rest(f"/jobs/{job_id}")
        vertices = detail["vertices"]
        chosen = next((v for v in vertices if VERTEX in v["name"]), None) or max(
            vertices, key=lambda v: int(v["parallelism"])
        )
        return job_id, str(chosen["id"]), int(chosen["parallelism"])

    def busy(self, job_id: str, vertex_id: str, parallelism: int) -> float | None:
        """Busy share (0..1) of the busiest subtask since the previous call; None when unknown."""
        shares = []
        for index in range(parallelism):
            rows = self.cluster.rest(
                f"/jobs/{job_id}/vertices/{vertex_id}/subtasks/{index}/metrics?get={','.join(TIME_COUNTERS)}"
            )
            values = {row["id"]: float(row["value"]) for row in rows or [] if row.get("value") is not None}
            if not all(name in values for name in TIME_COUNTERS):
                continue
            now = tuple(values[name] for name in TIME_COUNTERS)
            key = (job_id, vertex_id, index)
            before = self._counters.get(key)
            self._counters[key] = now
            if before is None:
                continue
            deltas = [a - b for a, b in zip(now, before, strict=True)]
            elapsed = sum(deltas)
            # Flink derives the busy counter (wall time since the task started, less idle and
            # back-pressured time), and idle time is added when an idle stretch ends: on a mostly
            # idle task the busy counter steps back now and then. Only the idle and back-pressure
            # counters, or the three together, going back mean a restarted task.
            if elapsed < 0 or deltas[1] < 0 or deltas[2] < 0:
                self._shares.pop(key, None)
            elif elapsed > 0:
                self._shares[key] = min(max(deltas[0] / elapsed, 0.0), 1.0)
            else:  # the fetcher has not refreshed since the previous sample: keep the last figure
                self._counters[key] = before
            if key in self._shares:
                shares.append(self._shares[key])
        return max(shares) if shares else None

    def scheduler_waiting(self, job_id: str) -> int:
        """Requests read from Kafka and waiting in the job's scheduler (the ``micro-batch``
        operator's ``schedulerWaiting`` gauge, summed over its subtasks): the job reads ahead of
        what it serves (docs/SCHEDULING.md), so they are backlog as much as the lag. 0 when the
        figure is not there (yet)."""
        detail = self.cluster.rest(f"/jobs/{job_id}")
        vertex = next((v for v in detail["vertices"] if v["name"].startswith(SCHEDULER)), None)
        if vertex is None:
            return 0
        rows = self.cluster.rest(
            f"/jobs/{job_id}/vertices/{vertex['id']}/subtasks/metrics?get={SCHEDULER}.schedulerWaiting&agg=sum")
        for row in rows or []:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                return max(0, int(float(row["sum"])))
        return 0

    # -- Kafka -----------------------------------------------------------------------------------

    def lag(self) -> int | None:
        """Records of the requests topic the job's consumer group has not committed; None if it has none."""
        from kafka import TopicPartition

        admin, consumer = self._clients()
        topic, group = self.settings.kafka.requests_topic, self.settings.job.consumer_group
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return None
        answer = admin.list_group_offsets(group)
        committed = answer.get(group, {}) if group in answer else answer  # kafka-python 3: {group: {tp: ...}}
        offsets = {tp: meta.offset for tp, meta in committed.items() if tp.topic == topic and meta.offset >= 0}
        if not offsets:
            return None
        ends = consumer.end_offsets(tps)
        return sum(max(0, ends[tp] - offsets.get(tp, 0)) for tp in tps)

    def latency_ms(self, since: float) -> float | None:
        """p90 ``end_to_end_ms`` of the newest results completed after ``since`` (epoch seconds)."""
        return percentile(self.latencies_ms(since), 0.9)

    def latencies_ms(self, since: float, per_partition: int | None = None) -> list[float]:
        """``end_to_end_ms`` of the newest results (up to ``per_partition`` a partition, default
        ``autoscale.latency_records``) completed after ``since`` (epoch seconds)."""
        from kafka import TopicPartition

        per_partition = self.settings.autoscale.latency_records if per_partition is None else per_partition
        if per_partition <= 0:
            return []
        _, consumer = self._clients()
        topic = self.settings.kafka.results_topic
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or set())]
        if not tps:
            return []
        if set(consumer.assignment()) != set(tps):
            consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        todo = {}
        for tp in tps:
            start = max(self._next_offset.get(tp, 0), ends[tp] - per_partition)
            if start < ends[tp]:
                consumer.seek(tp, start)
                todo[tp] = ends[tp]
            self._next_offset[tp] = ends[tp]
        values: list[float] = []
        deadline = time.monotonic() + 1.0  # cheap by design: a partial read is still a sample
        while todo and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=200, max_records=2000).items():
                for record in records:
                    if record.offset >= todo.get(tp, 0):
                        continue
                    try:
                        result = self._codec.decode_result(record.value, self.settings.job.output_record_limit)
                    except DecodeError:
                        continue
                    if result.completed_at_ms >= since * 1000:
                        values.append(result.timings.end_to_end_ms)
            todo = {tp: end for tp, end in todo.items() if consumer.position(tp) < end}
        return values

    def subtask_busy(self) -> dict[int, float]:
        """Busy share of each batch-infer subtask as of the last :meth:`busy` call."""
        return {key[2]: share for key, share in sorted(self._shares.items())}

    def end_offsets(self, topic: str) -> int:
        """Records ever written to ``topic`` (the sum of its partitions' end offsets)."""
        from kafka import TopicPartition

        _, consumer = self._clients()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or set())]
        return sum(consumer.end_offsets(tps).values()) if tps else 0

    # -- the sample ------------------------------------------------------------------------------

    def sample(self) -> Sample:
        """One sample now; NoJobError when the job is not running, OSError when Flink does not answer."""
        at = time.time()
        job_id, vertex_id, parallelism = self.job_vertex()
        busy = self.busy(job_id, vertex_id, parallelism)
        lag = self.lag()
        if lag is not None:
            lag += self.scheduler_waiting(job_id)
        previous = self._previous
        since = previous.at if previous is not None else at - self.settings.autoscale.interval_s
        latency = self.latency_ms(since)
        sample = Sample(at, lag, growth(previous, at, lag), busy, latency, parallelism)
        self._previous = sample
        return sample
