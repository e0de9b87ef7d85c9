"""DecodeRequests: Kafka record -> routed request, or an error result + dead letter.

The function only routes: it reads the request id and model from the front of the record
(:meth:`aimass.codec.Codec.peek_route`, a fraction of a full decode) and picks the request's
key (:mod:`aimass.keys`). Full decoding and validation happen once, in the keyed operator
(:class:`udfs.batch_infer.BatchInfer`), which keeps the decoded request for its batch. A
record that cannot be routed (not a request, truncated before its model, over the size
limit) is decoded here in full only to name the error precisely, and is rejected: error
result when its request id can be read, dead letter always.

Routed requests leave as ``(key, original, topic, partition, offset, received_ms)`` tuples; the
original Avro bytes, not a Python object, are what the keyed operator keeps in checkpointed
state, so state stays readable across code upgrades.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import OutputTag
from pyflink.datastream.functions import ProcessFunction, RuntimeContext

from aimass.settings import Settings
from udfs.core import open_core

#: Row type of records bound for the results topic: Kafka key (request id) and value.
RESULT_ROW = Types.ROW_NAMED(["k", "v"], [Types.STRING(), Types.PRIMITIVE_ARRAY(Types.BYTE())])
#: Row type of records bound for the dead-letter topic.
DEAD_LETTER_ROW = Types.ROW_NAMED(["v"], [Types.PRIMITIVE_ARRAY(Types.BYTE())])

ERROR_RESULTS = OutputTag("error-results", RESULT_ROW)
DEAD_LETTERS = OutputTag("dead-letters", DEAD_LETTER_ROW)


class DecodeRequests(ProcessFunction):
    """Route requests to their lane; reject what cannot be routed to the error side outputs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def open(self, runtime_context: RuntimeContext) -> None:
        self.core = open_core(self.settings)
        from aimass.keys import lane_key
        from aimass.rejects import Source  # loaded by open_core

        self.source_type, self.lane_key = Source, lane_key
        self.max_bytes = self.settings.job.max_payload_bytes
        self.output_limit = self.settings.job.output_record_limit
        self.lanes, self.max_parallelism = self.settings.job.lanes, self.settings.job.max_parallelism

    def process_element(self, value: Row, ctx: ProcessFunction.Context) -> Iterator[Any]:
        original, topic, partition, offset = value[0], value[1], value[2], value[3]
        original = bytes(original) if original is not None else b""
        now_ms = int(time.time() * 1000)
        route = self.core.codec.peek_route(original) if len(original) <= self.max_bytes else None
        if route is not None:
            request_id, model = route
            key = self.lane_key(model, request_id, self.lanes, self.max_parallelism)
            yield key, original, topic or "", int(partition or 0), int(offset or 0), now_ms
            return
        source = self.source_type(topic or "", int(partition or 0), int(offset or 0))
        try:
            request = self.core.codec.decode_request(original, self.max_bytes)
        except self.core.decode_error as exc:
            yield from self._reject(original, source, exc.reason, exc.message, now_ms, exc.request_id)
            return
        # It decodes although peek_route found no id or model (an empty string): route it, and
        # the keyed operator's validation gives it its typed error.
        yield (
            self.lane_key(request.model, request.request_id, self.lanes, self.max_parallelism),
            original, source.topic, source.partition, source.offset, now_ms,
        )

    def _reject(self, original: bytes, source: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        rejection = self.core.reject(self.core.codec, original, source, *args, limit=self.output_limit, **kwargs)
        if rejection.result is not None:
            yield ERROR_RESULTS, Row(rejection.result_key, rejection.result)
        yield DEAD_LETTERS, Row(rejection.dead_letter)
