"""InferBatch: one Python call per micro-batch (decode, validate, infer, encode).

The Java steps before it (``java/``: route, micro-batch in keyed state) hand it one batch
frame; it returns one outputs frame for the Java steps after it (split, de-duplicate by
request id). A ``MapFunction``, not a generator: one value back per call, no per-record
crossing and no per-record state call from Python. All the logic is in
:class:`aimass.serving.batches.BatchServer`; this only builds it in ``open`` and delegates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pyflink.datastream.functions import MapFunction, RuntimeContext

from aimass.settings import Settings
from udfs.core import open_server

if TYPE_CHECKING:
    from aimass.serving.batches import BatchServer


class InferBatch(MapFunction):
    """Batch frame (bytes) -> outputs frame (bytes).

    Flink metrics of this operator (every reporter carries them; with the local stack's
    Prometheus reporter they are labelled by the key-value groups): ``model.<m>.version.<v>.
    status.<s>.results`` (results this step wrote, error results of refused records included; a
    resubmission is computed again here and then dropped by the de-duplication: ``dedupDropped``),
    ``reason.<r>.dead_letters``, ``model.<m>.shadow_agree``/``shadow_disagree``, and
    ``inferenceUs``, a histogram of the time of each engine call in microseconds (thread mode; in
    process mode ``inferenceUsTotal`` and ``inferenceCalls`` counters instead). The Java steps add
    ``batchSize``, ``queuedMs``, ``schedulerWaiting`` (micro-batch) and ``dedupDropped``.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.server: BatchServer | None = None
        self.metrics: Any = None
        self.counters: dict[tuple[str, str], Any] = {}
        self.exported: dict[tuple[str, str], int] = {}
        self.served: dict[tuple[str, ...], Any] = {}
        self.served_exported: dict[tuple[str, ...], int] = {}
        self.histogram: Any = None
        self.time_counters: tuple[Any, Any] | None = None

    def open(self, runtime_context: RuntimeContext) -> None:
        self.server = open_server(self.settings)
        self.metrics = runtime_context.get_metrics_group()
        self.histogram = _java_histogram(self.metrics, "inferenceUs")
        if self.histogram is None:
            self.time_counters = (self.metrics.counter("inferenceUsTotal"), self.metrics.counter("inferenceCalls"))

    def map(self, value: bytes) -> bytes:
        assert self.server is not None  # built in open()
        out = self.server.serve(bytes(value))
        counts = self.server.shadow_stats.counts
        if counts != self.exported:
            self._export(counts)
        self._export_stats()
        return out

    def _export_stats(self) -> None:
        """Per-batch deltas of the server's totals into Flink counters (one crossing per key that moved)."""
        assert self.server is not None
        stats = self.server.stats
        moved: list[tuple[tuple[str, ...], int]] = [(("results", *key), n) for key, n in stats.results.items()]
        moved += [(("dead_letters", reason), n) for reason, n in stats.dead_letters.items()]
        for key, total in moved:
            delta = total - self.served_exported.get(key, 0)
            if not delta:
                continue
            counter = self.served.get(key)
            if counter is None:
                group = self.metrics
                if key[0] == "results":
                    group = group.add_group("model", key[1]).add_group("version", key[2] or "none")
                    group = group.add_group("status", key[3])
                else:
                    group = group.add_group("reason", key[1])
                counter = self.served[key] = group.counter(key[0])
            counter.inc(delta)
            self.served_exported[key] = total
        for took in stats.take_times():
            micros = int(round(took * 1000))
            if self.histogram is not None:
                self.histogram.update(micros)
            elif self.time_counters is not None:
                self.time_counters[0].inc(micros)
                self.time_counters[1].inc(1)

    def _export(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Shadow agreement per model as Flink counters: ``model.<name>.shadow_agree`` / ``shadow_disagree``."""
        for key, count in counts.items():
            counter = self.counters.get(key)
            if counter is None:
                counter = self.counters[key] = self.metrics.add_group("model", key[0]).counter(f"shadow_{key[1]}")
            counter.inc(count - self.exported.get(key, 0))
            self.exported[key] = count


def _java_histogram(metrics: Any, name: str) -> Any:
    """A Flink ``DescriptiveStatisticsHistogram`` on ``metrics`` (thread mode: the Java metric
    group is at hand through pemja); None where it is not (process mode)."""
    java_group = getattr(metrics, "_metrics", None)
    if java_group is None:
        return None
    try:
        from pemja import findClass

        histogram = findClass("org.apache.flink.runtime.metrics.DescriptiveStatisticsHistogram")
        return java_group.histogram(name, histogram(1000))
    except Exception:  # noqa: BLE001 - metrics must never fail the operator
        return None
