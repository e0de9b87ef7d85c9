"""Bad records for fault campaigns, each with what the job must answer. Pure: no Kafka.

Every kind of bad input a producer can send, made from a seeded generator: bytes that are not
Avro, a truncated request, a record of another schema, a request with the wrong shape or
dtype, an unknown model, a model name that tries to leave the repository, a request larger
than ``max_payload_bytes`` and one whose deadline has passed. Each :class:`BadRecord` says
which dead-letter reason the job must give it and, when its request id is readable, which
error status the client must get on the results topic.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from aimass.codec import HEADER_SIZE, MARKER, Codec
from aimass.messages import InferenceRequest, InferenceResult, Reason, Status, Tensor

#: The kinds of bad record, in the order a campaign cycles through them.
KINDS = (
    "garbage",
    "truncated",
    "wrong_schema",
    "wrong_shape",
    "wrong_dtype",
    "unknown_model",
    "path_traversal",
    "oversized",
    "expired_deadline",
)


@dataclass(frozen=True)
class BadRecord:
    """One bad record and the job's required answer to it."""

    kind: str
    value: bytes
    reason: Reason
    """The dead-letter reason code the job must give it."""
    request_id: str | None = None
    """Readable request id: the job must also put an error result with :attr:`status` for it."""
    status: Status | None = None


def digits_request(request_id: str, pixels: np.ndarray, **fields: object) -> InferenceRequest:
    """A request for the demo ``digits`` model on ``pixels`` (rows of 64 float32)."""
    return InferenceRequest(
        request_id=request_id,
        model="digits",
        inputs=(Tensor.from_numpy("pixels", np.asarray(pixels, dtype=np.float32)),),
        created_at_ms=int(time.time() * 1000),
        **fields,  # type: ignore[arg-type]
    )


class BadRecords:
    """Makes bad records of every kind from a seeded generator.

    Args:
        codec: The codec of the data contract.
        rng: Seeded generator (a campaign is repeatable).
        max_payload_bytes: The job's ``max_payload_bytes``: an oversized record exceeds it.
        id_prefix: Prefix of the request ids it invents.
        near_limit_bytes: When set, every other oversized record is this long instead of just
            over ``max_payload_bytes`` (the largest record the broker still accepts: its dead
            letter, original bytes plus envelope, is larger still).
    """

    def __init__(self, codec: Codec, rng: random.Random, max_payload_bytes: int, id_prefix: str,
                 near_limit_bytes: int | None = None) -> None:
        self.codec = codec
        self.rng = rng
        self.max_payload_bytes = max_payload_bytes
        if near_limit_bytes is not None and near_limit_bytes < max_payload_bytes + 1024:
            near_limit_bytes = None  # too close to the limit to be told apart from "just over"
        self.near_limit_bytes = near_limit_bytes
        self._oversized_count = 0
        self.id_prefix = id_prefix
        self._count = 0
        self._makers: dict[str, Callable[[str], BadRecord]] = {
            "garbage": self._garbage,
            "truncated": self._truncated,
            "wrong_schema": self._wrong_schema,
            "wrong_shape": self._wrong_shape,
            "wrong_dtype": self._wrong_dtype,
            "unknown_model": self._unknown_model,
            "path_traversal": self._path_traversal,
            "oversized": self._oversized,
            "expired_deadline": self._expired_deadline,
        }

    def make(self, kind: str | None = None) -> BadRecord:
        """A bad record of ``kind`` (the next kind in :data:`KINDS` when None)."""
        if kind is None:
            kind = KINDS[self._count % len(KINDS)]
        self._count += 1
        return self._makers[kind](f"{self.id_prefix}bad-{kind}-{self._count}")

    def _pixels(self, rows: int = 1, cols: int = 64) -> np.ndarray:
        values = [self.rng.random() for _ in range(rows * cols)]
        return np.asarray(values, dtype=np.float32).reshape(rows, cols)

    def _garbage(self, rid: str) -> BadRecord:
        body = bytes(self.rng.getrandbits(8) for _ in range(self.rng.randint(0, 200)))
        first = self.rng.choice([b for b in range(256) if b != MARKER[0]])
        # A uuid makes every record unique, so its dead letter can be matched to it.
        return BadRecord("garbage", bytes([first]) + uuid.UUID(int=self.rng.getrandbits(128)).bytes + body,
                         Reason.UNDECODABLE)

    def _truncated(self, rid: str) -> BadRecord:
        data = self.codec.encode_request(digits_request(rid, self._pixels()))
        # Cut anywhere after the id: the id stays readable, the body is not a request.
        shortest = HEADER_SIZE + 1 + len(rid.encode())
        cut = self.rng.randint(shortest, len(data) - 1)
        return BadRecord("truncated", data[:cut], Reason.UNDECODABLE, rid, Status.INVALID_INPUT)

    def _wrong_schema(self, rid: str) -> BadRecord:
        if self.rng.random() < 0.5:
            # A result sent to the requests topic: a known schema, the wrong one.
            value = self.codec.encode_result(
                InferenceResult(request_id=rid, model="digits", status=Status.OK, completed_at_ms=0)
            )
        else:
            # A request written with a schema version the job does not know.
            fingerprint = bytes(self.rng.getrandbits(8) for _ in range(8))
            body = self.codec.encode_request(digits_request(rid, self._pixels()))[HEADER_SIZE:]
            value = MARKER + fingerprint + body
        return BadRecord("wrong_schema", value, Reason.WRONG_SCHEMA)

    def _wrong_shape(self, rid: str) -> BadRecord:
        cols = self.rng.choice([0, 1, 63, 65, 128])
        value = self.codec.encode_request(digits_request(rid, self._pixels(1, cols)))
        return BadRecord("wrong_shape", value, Reason.INVALID_INPUT, rid, Status.INVALID_INPUT)

    def _wrong_dtype(self, rid: str) -> BadRecord:
        dtype = self.rng.choice(["float64", "int64", "int32", "uint8"])
        pixels = (self._pixels() * 16).astype(dtype)
        request = InferenceRequest(
            request_id=rid,
            model="digits",
            inputs=(Tensor.from_numpy("pixels", pixels),),
            created_at_ms=int(time.time() * 1000),
        )
        return BadRecord("wrong_dtype", self.codec.encode_request(request), Reason.INVALID_INPUT, rid,
                         Status.INVALID_INPUT)

    def _unknown_model(self, rid: str) -> BadRecord:
        if self.rng.random() < 0.5:
            request = digits_request(rid, self._pixels())
            request = InferenceRequest(rid, f"no-such-model-{self.rng.randint(0, 999)}", request.inputs,
                                       request.created_at_ms)
        else:
            request = digits_request(rid, self._pixels(), version=str(self.rng.randint(100, 999)))
        return BadRecord("unknown_model", self.codec.encode_request(request), Reason.UNKNOWN_MODEL, rid,
                         Status.UNKNOWN_MODEL)

    def _path_traversal(self, rid: str) -> BadRecord:
        model, version = self.rng.choice(
            [("..", None), ("../digits", None), ("digits", "../../etc"), ("/etc/passwd", None), ("digits", "..")]
        )
        request = digits_request(rid, self._pixels(), version=version)
        request = InferenceRequest(rid, model, request.inputs, request.created_at_ms, version)
        return BadRecord("path_traversal", self.codec.encode_request(request), Reason.INVALID_INPUT, rid,
                         Status.INVALID_INPUT)

    def _oversized(self, rid: str) -> BadRecord:
        self._oversized_count += 1
        target = self.max_payload_bytes + 1
        if self.near_limit_bytes is not None and self._oversized_count % 2 == 0:
            target = max(target, self.near_limit_bytes)
        # One row of 64 float32 is 256 bytes; the envelope is well under 256 bytes.
        rows = target // (64 * 4) + 1
        pixels = np.zeros((rows, 64), dtype=np.float32)
        pixels[0, 0] = self.rng.random()  # unique bytes: matched to its dead letter by digest
        value = self.codec.encode_request(digits_request(rid, pixels))
        if self.near_limit_bytes is not None and len(value) > self.near_limit_bytes:
            rows = (self.near_limit_bytes - (len(value) - rows * 256)) // 256
            value = self.codec.encode_request(digits_request(rid, pixels[:rows]))
        return BadRecord("oversized", value, Reason.OVERSIZED, rid, Status.INVALID_INPUT)

    def _expired_deadline(self, rid: str) -> BadRecord:
        past = int(time.time() * 1000) - self.rng.randint(1_000, 3_600_000)
        value = self.codec.encode_request(digits_request(rid, self._pixels(), deadline_ms=past))
        return BadRecord("expired_deadline", value, Reason.DEADLINE_EXCEEDED, rid, Status.DEADLINE_EXCEEDED)
