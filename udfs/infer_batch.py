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
    """Batch frame (bytes) -> outputs frame (bytes)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.server: BatchServer | None = None
        self.metrics: Any = None
        self.counters: dict[tuple[str, str], Any] = {}
        self.exported: dict[tuple[str, str], int] = {}

    def open(self, runtime_context: RuntimeContext) -> None:
        self.server = open_server(self.settings)
        self.metrics = runtime_context.get_metrics_group()

    def map(self, value: bytes) -> bytes:
        assert self.server is not None  # built in open()
        out = self.server.serve(bytes(value))
        counts = self.server.shadow_stats.counts
        if counts != self.exported:
            self._export(counts)
        return out

    def _export(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Shadow agreement per model as Flink counters: ``model.<name>.shadow_agree`` / ``shadow_disagree``."""
        for key, count in counts.items():
            counter = self.counters.get(key)
            if counter is None:
                counter = self.counters[key] = self.metrics.add_group("model", key[0]).counter(f"shadow_{key[1]}")
            counter.inc(count - self.exported.get(key, 0))
            self.exported[key] = count
