"""The per-record work every Kafka-fed system does: Avro decode, ONNX Runtime, Avro encode.

The peers (the plain loop and Quix Streams) call :class:`Scorer`, which is AI Mass's own core
(:class:`aimass.contract.codec.Codec` and :class:`aimass.serving.engine.InferenceEngine` with the job's session
options: one intra-op thread, spinning off), so that every system does the same work per
record and the figures compare the plumbing around it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

from aimass.contract.codec import Codec, DecodeError
from aimass.serving.engine import InferenceEngine
from aimass.serving.models import ModelRepository
from aimass.serving.rejects import Source, reject
from aimass.serving.sessions import SessionCache
from aimass.settings import Settings


class Scorer:
    """Turns request bytes into ``(key, result bytes)`` pairs, one call per batch."""

    def __init__(self, settings: Settings) -> None:
        engine = replace(settings.engine, intra_op_threads=1)
        self.codec = Codec(settings.paths.schemas_dir)
        self.engine = InferenceEngine(ModelRepository(settings.paths.models_dir), SessionCache(engine), settings.job)

    def score(self, values: Sequence[bytes]) -> list[tuple[bytes, bytes]]:
        """Serve a batch of request records; one result per record whose id can be read."""
        now_ms = int(time.time() * 1000)
        requests, out = [], []
        for value in values:
            try:
                requests.append(self.codec.decode_request(value))
            except DecodeError as exc:  # errors are data: an error result when the id is known
                rejection = reject(self.codec, value, Source("", 0, 0), exc.reason, exc.message, now_ms,
                                   exc.request_id)
                key, result = rejection.result_key, rejection.result
                if key is not None and result is not None:
                    out.append((key.encode(), result))
        if requests:
            results = self.engine.run(requests, [now_ms] * len(requests), int(time.time() * 1000))
            out += [((r.request_id or "").encode(), self.codec.encode_result(r)) for r in results]
        return out
