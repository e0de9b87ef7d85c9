"""InferBatch: one Python call per micro-batch (decode, validate, infer, encode).

The Java steps before it (``java/``: route, micro-batch in keyed state) hand it one batch
frame; it returns one outputs frame for the Java steps after it (split, de-duplicate by
request id). A ``MapFunction``, not a generator: one value back per call, no per-record
crossing and no per-record state call from Python. All the logic is in
:class:`aimass.batches.BatchServer`; this only builds it in ``open`` and delegates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyflink.datastream.functions import MapFunction, RuntimeContext

from aimass.settings import Settings
from udfs.core import open_server

if TYPE_CHECKING:
    from aimass.batches import BatchServer


class InferBatch(MapFunction):
    """Batch frame (bytes) -> outputs frame (bytes)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.server: BatchServer | None = None

    def open(self, runtime_context: RuntimeContext) -> None:
        self.server = open_server(self.settings)

    def map(self, value: bytes) -> bytes:
        assert self.server is not None  # built in open()
        return self.server.serve(bytes(value))
