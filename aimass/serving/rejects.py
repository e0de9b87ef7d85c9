"""Errors as data: turn a rejected record into an error result and a dead-letter record.

A malformed or unservable request never disappears: a waiting client gets an error result on
the response topic (when its request id can be read) and the original bytes go to the
dead-letter topic with where they came from and why.

Everything built here fits the output topics (``output_record_limit``): a record the sink
cannot write fails the job, which then reads the same record again, forever. So messages are
clipped (:func:`aimass.contract.messages.clip`), and a result too large for its topic is answered with
a small error result instead (:func:`deliverable`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from aimass.contract.codec import Codec
from aimass.contract.limits import RECORD_OVERHEAD_BYTES
from aimass.contract.messages import DeadLetter, InferenceResult, Reason, Status, Timings, clip


@dataclass(frozen=True, slots=True)
class Source:
    """Where a record was read from."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Rejection:
    """Encoded outputs for one rejected record."""

    result_key: str | None
    result: bytes | None
    """Encoded error result, or None when no request id could be read."""
    dead_letter: bytes


def reject(
    codec: Codec,
    original: bytes,
    source: Source,
    reason: Reason,
    message: str,
    now_ms: int,
    request_id: str | None = None,
    *,
    model: str = "",
    created_at_ms: int | None = None,
    error_result: bool = True,
    limit: int | None = None,
) -> Rejection:
    """Build the error result (if the request id is known) and the dead-letter record.

    ``error_result=False``: the dead letter only, for a request whose (error) result was
    already produced by the engine. ``limit``: the output topics' record limit; a dead letter
    that would exceed it (the requests topic took a record larger than the job's settings
    allow for) carries the head of the original and its SHA-256 instead of all of it, so the
    job can still write it.
    """
    message = clip(message)
    original = bytes(original)

    def dead_letter(body: bytes, text: str) -> bytes:
        return codec.encode_dead_letter(
            DeadLetter(
                original=body,
                topic=source.topic,
                partition=source.partition,
                offset=source.offset,
                reason=reason,
                message=text,
                at_ms=now_ms,
                request_id=request_id,
            )
        )

    # Sized before it is built: a record far over the limit (a compressed batch lets a producer
    # past the broker's record limit) must not be copied whole into a dead letter first.
    envelope = len(dead_letter(b"", message)) + 10  # everything but the original, and its length prefix
    if limit is not None and envelope + len(original) + RECORD_OVERHEAD_BYTES > limit:
        keep = max(limit - RECORD_OVERHEAD_BYTES - envelope - 512, 0)
        note = (f" [original of {len(original)} bytes cut to its first {keep} for the dead-letter topic; "
                f"sha256 {hashlib.sha256(original).hexdigest()}]")
        dead = dead_letter(original[:keep], message + note)
    else:
        dead = dead_letter(original, message)
    if request_id is None or not error_result:
        return Rejection(None, None, dead)
    result = codec.encode_result(
        InferenceResult(
            request_id=request_id,
            model=clip(model, 64),
            status=reason.status(),
            completed_at_ms=now_ms,
            error=f"{reason.value}: {message}",
            timings=Timings(end_to_end_ms=float(now_ms - created_at_ms) if created_at_ms else 0.0),
        )
    )
    return Rejection(request_id, result, dead)


def deliverable(codec: Codec, result: InferenceResult, limit: int) -> tuple[InferenceResult, bytes]:
    """``result`` and its encoding, or a small error result in its place when it cannot go out.

    A result whose key and value exceed ``limit`` (the results topic's record limit, less
    :data:`RECORD_OVERHEAD_BYTES`) is replaced by an ``INVALID_INPUT`` result saying so: its
    request is valid, but its answer is too large to deliver, and sending fewer rows is the
    remedy. A result that cannot be encoded at all gets ``INTERNAL_ERROR``. The caller emits a
    dead letter for either, as for any non-OK result.
    """
    key_bytes = len(result.request_id.encode("utf-8")) if result.request_id else 0
    try:
        value = codec.encode_result(result)
    except ValueError as exc:
        message = f"{Reason.INTERNAL_ERROR.value}: the result cannot be encoded: {exc}"
        small = InferenceResult(result.request_id, clip(result.model, 64), Status.INTERNAL_ERROR,
                                result.completed_at_ms, error=clip(message))
        return small, codec.encode_result(small)
    size = key_bytes + len(value)
    if size + RECORD_OVERHEAD_BYTES <= limit:
        return result, value
    message = (f"{Reason.INVALID_INPUT.value}: the result of this request is {size} bytes, more than the "
               f"results topic takes ({limit - RECORD_OVERHEAD_BYTES} bytes with its key); send fewer rows")
    small = InferenceResult(
        request_id=result.request_id,
        model=result.model,
        status=Status.INVALID_INPUT,
        completed_at_ms=result.completed_at_ms,
        version=result.version,
        error=clip(message),
        timings=result.timings,
    )
    return small, codec.encode_result(small)
