"""BatchInfer: keyed micro-batching in checkpointed state, one ONNX Runtime call per batch.

Per key (model + lane, see :mod:`aimass.keys`) the function keeps, in Flink state:

* ``pending``: the requests waiting for their batch (original Avro bytes and source
  position), so a failure or a rescale loses none of them;
* ``pending_rows`` and ``timer``: the batch's row count and its flush timer;
* ``seen``: request ids already accepted (with a TTL), so a resubmitted id yields one result;
* ``served``: a per-key counter of requests answered.

Each record is decoded and validated once, here (the router upstream only peeks at its id and
model). A valid request is buffered; its decoded form is also kept in operator memory until
its batch runs, so a batch is not decoded twice. Memory is a cache, state is the truth: after
a restore or a rescale, the batch is decoded again from the bytes in state.

A batch is flushed when it reaches the model's ``max_batch_size`` rows or when the
processing-time timer set at ``max_delay_ms`` after its first request fires.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from pyflink.common import Row
from pyflink.common.time import Time
from pyflink.common.typeinfo import Types
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import (
    ListStateDescriptor,
    MapStateDescriptor,
    StateTtlConfig,
    ValueStateDescriptor,
)

from aimass.settings import Settings
from udfs.core import open_core
from udfs.decode import DEAD_LETTERS


class BatchInfer(KeyedProcessFunction):
    """Validate requests, buffer them per key and run them through ONNX Runtime in batches."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def open(self, runtime_context: RuntimeContext) -> None:
        job = self.settings.job
        self.core = open_core(self.settings)
        self.codec, self.engine = self.core.codec, self.core.engine
        from aimass.messages import Reason, Status  # loaded by open_core
        from aimass.rejects import Source, deliverable

        self.reason_type, self.ok, self.source_type, self.deliverable = Reason, Status.OK, Source, deliverable
        self.max_bytes, self.output_limit = job.max_payload_bytes, job.output_record_limit
        self.decoded: dict[tuple[str, int, int], Any] = {}
        """Decoded requests of pending batches by source position (topic, partition, offset)."""
        self.pending = runtime_context.get_list_state(
            ListStateDescriptor("pending", Types.PICKLED_BYTE_ARRAY())
        )
        self.pending_rows = runtime_context.get_state(ValueStateDescriptor("pending_rows", Types.LONG()))
        self.timer = runtime_context.get_state(ValueStateDescriptor("timer", Types.LONG()))
        self.served = runtime_context.get_state(ValueStateDescriptor("served", Types.LONG()))
        seen = MapStateDescriptor("seen", Types.STRING(), Types.LONG())
        # Thread mode crashes on TTL state unless background cleanup is disabled; expired
        # entries are then dropped on read and at full snapshots.
        ttl = (
            StateTtlConfig.new_builder(Time.seconds(job.dedup_ttl_s))
            .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
            .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
            .cleanup_full_snapshot()
            .disable_cleanup_in_background()
            .build()
        )
        seen.enable_time_to_live(ttl)
        self.seen = runtime_context.get_map_state(seen)

    def process_element(self, value: tuple[Any, ...], ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        original, topic, partition, offset, received_ms = value[1:6]  # see DecodeRequests
        try:
            request = self.codec.decode_request(original, self.max_bytes)
        except self.core.decode_error as exc:
            # Under an id already accepted, a dead letter only: the id's one result is that request's.
            answered = exc.request_id is not None and self.seen.contains(exc.request_id)
            yield from self._reject(original, topic, partition, offset, exc.reason, exc.message, exc.request_id,
                                    error_result=not answered)
            return
        answered = self.seen.contains(request.request_id)
        problem = self.engine.check(request, int(time.time() * 1000))
        if problem is not None:
            # Under an accepted id (a resubmission past its deadline, another record reusing the
            # id), a dead letter only: no second result may replace the id's one on its topic.
            reason, message = problem
            yield from self._reject(
                original, topic, partition, offset, reason, message, request.request_id, request.model,
                request.created_at_ms, error_result=not answered,
            )
            return
        if answered:
            return  # a resubmission of a request already accepted: its result is on its way
        self.seen.put(request.request_id, received_ms)
        self.pending.add(value[1:6])
        self.decoded[(topic, partition, offset)] = request
        rows = (self.pending_rows.value() or 0) + request.rows
        max_batch, max_delay = self.engine.batch_limits(request.model, request.version)
        if rows >= max_batch:
            yield from self._flush(ctx)
            return
        self.pending_rows.update(rows)
        if self.timer.value() is None:
            at = ctx.timer_service().current_processing_time() + max_delay
            ctx.timer_service().register_processing_time_timer(at)
            self.timer.update(at)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Any]:
        if self.timer.value() == timestamp:
            self.timer.clear()
            yield from self._flush(ctx)

    def _flush(self, ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        entries = list(self.pending.get() or ())
        self.pending.clear()
        self.pending_rows.clear()
        at = self.timer.value()
        if at is not None:
            ctx.timer_service().delete_processing_time_timer(at)
            self.timer.clear()
        if not entries:
            return
        requests, received, kept = [], [], []
        for entry in entries:
            original, topic, partition, offset, received_ms = entry
            request = self.decoded.pop((topic, partition, offset), None)
            if request is None:  # restored from a checkpoint: decode the bytes in state
                try:
                    request = self.codec.decode_request(original, self.max_bytes)
                except self.core.decode_error as exc:  # only after an upgrade that tightened a rule
                    yield from self._reject(original, topic, partition, offset, exc.reason, exc.message,
                                            exc.request_id)
                    continue
            requests.append(request)
            received.append(received_ms)
            kept.append(entry)
        results = self.engine.run(requests, received, int(time.time() * 1000))
        for entry, request, result in zip(kept, requests, results, strict=True):
            result, encoded = self.deliverable(self.codec, result, self.output_limit)  # too large: an error
            yield Row(result.request_id, encoded)
            if result.status is not self.ok:
                reason = self.reason_type(result.status.value)  # every non-OK status has its reason code
                original, topic, partition, offset, _ = entry
                yield from self._reject(
                    original, topic, partition, offset, reason, result.error or "", request.request_id,
                    error_result=False,
                )
        self.served.update((self.served.value() or 0) + len(results))

    def _reject(
        self, original: bytes, topic: str, partition: int, offset: int, reason: Any, message: str,
        request_id: str | None = None, model: str = "", created_at_ms: int | None = None, error_result: bool = True,
    ) -> Iterator[Any]:
        """Dead letter on the side output; error result (when the id is known) on the main one,
        unless the request's result was already emitted (``error_result=False``)."""
        source = self.source_type(topic, partition, offset)
        rejection = self.core.reject(
            self.codec, original, source, reason, message, int(time.time() * 1000), request_id, model,
            created_at_ms, error_result, self.output_limit,
        )
        if rejection.result is not None:
            yield Row(rejection.result_key, rejection.result)
        yield DEAD_LETTERS, Row(rejection.dead_letter)
