"""Errors as data: turn a rejected record into an error result and a dead-letter record.

A malformed or unservable request never disappears: a waiting client gets an error result on
the response topic (when its request id can be read) and the original bytes go to the
dead-letter topic with where they came from and why.
"""

from __future__ import annotations

from dataclasses import dataclass

from aimass.codec import Codec
from aimass.messages import DeadLetter, InferenceResult, Reason, Timings


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
    model: str = "",
    created_at_ms: int | None = None,
    error_result: bool = True,
) -> Rejection:
    """Build the error result (if the request id is known) and the dead-letter record.

    ``error_result=False``: the dead letter only, for a request whose (error) result was
    already produced by the engine.
    """
    dead = codec.encode_dead_letter(
        DeadLetter(
            original=original,
            topic=source.topic,
            partition=source.partition,
            offset=source.offset,
            reason=reason,
            message=message,
            at_ms=now_ms,
            request_id=request_id,
        )
    )
    if request_id is None or not error_result:
        return Rejection(None, None, dead)
    result = codec.encode_result(
        InferenceResult(
            request_id=request_id,
            model=model,
            status=reason.status(),
            completed_at_ms=now_ms,
            error=f"{reason.value}: {message}",
            timings=Timings(end_to_end_ms=float(now_ms - created_at_ms) if created_at_ms else 0.0),
        )
    )
    return Rejection(request_id, result, dead)
