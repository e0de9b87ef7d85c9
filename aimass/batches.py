"""Serving one batch: frame in, frame out, with no Flink import.

The job's Java steps route each Kafka record to a lane and micro-batch it there in
checkpointed state (``java/``); a lane's batch reaches Python as one frame
(:mod:`aimass.frames`). :class:`BatchServer` decodes and validates every record, runs the
accepted ones through the engine (one ONNX Runtime call per model version group), and
answers each record in arrival order:

* an accepted request: its result (kind ``RESULT``: it claims its id), and a dead letter as
  well when that result is not OK;
* a refused record: a dead letter, and an error result (``ERROR_RESULT``: claims nothing)
  when its id can be read;
* a second accepted record of an id already accepted in the same batch: nothing (its twin's
  result is the id's one), without running it;
* a record that makes the codec or the engine raise (a bug: neither should): INTERNAL_ERROR for
  it (or for the batch's accepted requests), never an exception out of the operator, which
  would restart the job and meet the same record again.

Which result an id keeps across batches is decided downstream, keyed by request id
(``java/.../Dedup.java``): the first that claims it; an error result only while none has.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from aimass.codec import Codec, DecodeError
from aimass.frames import DEAD_LETTER, ERROR_RESULT, RESULT, BatchRecord, OutputsWriter, read_batch
from aimass.messages import InferenceRequest, InferenceResult, Reason, Status, clip
from aimass.rejects import Source, deliverable, reject

if TYPE_CHECKING:
    from aimass.engine import InferenceEngine
    from aimass.models import ModelSpec
    from aimass.settings import JobSettings


def wall_ms() -> int:
    """Epoch milliseconds now."""
    return int(time.time() * 1000)


def _bug(doing: str, exc: Exception) -> str:
    return clip(f"the job failed {doing} this request (a bug, please report it): {type(exc).__name__}: {exc}")


class BatchServer:
    """Answers batch frames (see the module docstring)."""

    def __init__(self, codec: Codec, engine: InferenceEngine, job: JobSettings,
                 clock: Callable[[], int] = wall_ms) -> None:
        self.codec, self.engine, self.clock = codec, engine, clock
        self.max_bytes, self.output_limit = job.max_payload_bytes, job.output_record_limit

    def serve(self, frame: bytes) -> bytes:
        """The outputs frame answering every record of the batch frame ``frame``."""
        records = read_batch(frame)
        now = self.clock()
        answers: list[OutputsWriter] = [OutputsWriter() for _ in records]
        accepted: list[tuple[int, InferenceRequest, ModelSpec]] = []
        ids: set[str] = set()
        for i, record in enumerate(records):
            try:
                request = self.codec.decode_request(record.value, self.max_bytes)
            except DecodeError as exc:
                self._refuse(answers[i], record, exc.reason, exc.message, now, exc.request_id)
                continue
            except Exception as exc:  # noqa: BLE001 - a codec bug fails this record, never the job
                self._refuse(answers[i], record, Reason.INTERNAL_ERROR, _bug("decoding", exc), now,
                             self.codec.peek_request_id(record.value))
                continue
            spec = self.engine.admit(request, now)
            if isinstance(spec, tuple):
                self._refuse(answers[i], record, spec[0], spec[1], now, request.request_id,
                             request.model, request.created_at_ms)
            elif request.request_id not in ids:
                ids.add(request.request_id)
                accepted.append((i, request, spec))
        if accepted:
            requests = [request for _, request, _ in accepted]
            received = [records[i].received_ms for i, _, _ in accepted]
            try:
                results = self.engine.run(requests, received, now, [spec for _, _, spec in accepted])
            except Exception as exc:  # noqa: BLE001 - documented never to raise; if it does, the batch's
                # requests get INTERNAL_ERROR results (their ids are claimed: they were accepted)
                message = _bug("serving", exc)
                results = [InferenceResult(r.request_id, r.model, Status.INTERNAL_ERROR, self.clock(),
                                           error=f"{Reason.INTERNAL_ERROR.value}: {message}") for r in requests]
            for (i, request, _), result in zip(accepted, results, strict=True):
                result, encoded = deliverable(self.codec, result, self.output_limit)  # too large: an error
                answers[i].add(RESULT, request.request_id, encoded)
                if result.status is not Status.OK:
                    reason = Reason(result.status.value)  # every non-OK status has its reason code
                    self._refuse(answers[i], records[i], reason, result.error or "", now, request.request_id,
                                 error_result=False)
        out = OutputsWriter()
        for answer in answers:
            out.extend(answer)
        return out.frame()

    def _refuse(
        self, answer: OutputsWriter, record: BatchRecord, reason: Reason, message: str, now: int,
        request_id: str | None, model: str = "", created_at_ms: int | None = None, error_result: bool = True,
    ) -> None:
        rejection = reject(
            self.codec, record.value, Source(record.topic, record.partition, record.offset), reason, message,
            now, request_id, model, created_at_ms, error_result, self.output_limit,
        )
        if rejection.result is not None:
            answer.add(ERROR_RESULT, rejection.result_key, rejection.result)
        answer.add(DEAD_LETTER, request_id, rejection.dead_letter)
