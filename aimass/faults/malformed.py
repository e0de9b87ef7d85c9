"""Bad records for fault campaigns, each with what the job must answer. Pure: no Kafka.

Every kind of bad input a producer can send, made from a seeded generator: bytes that are not
Avro, a truncated request, a record of another schema, a request with the wrong shape or
dtype, an unknown model, a model name that tries to leave the repository, a request larger
than ``max_payload_bytes`` and one whose deadline has passed; and, since the hardening of
issue 8, request bodies corrupt after a readable id or from their first byte, impossible
shapes (product not matching the data, negative, overflowing, no rows, too many dimensions),
missing, extra, repeated or too many inputs, dtypes the wire does not carry, empty or
over-long request ids, model names and versions that are not names (non-ASCII, control
characters, or a hundred kilobytes long) and deadlines at or before the epoch. Each
:class:`BadRecord` says which dead-letter reason the job must give it and, when its request id
is readable, which error status the client must get on the results topic.

Left out of :data:`KINDS`, because the answer the job owes them is not a property of the
record alone or because they cannot be told apart by their bytes:

* an empty or NULL value (a tombstone): every one has the same bytes, and the oracle matches
  dead letters by the digest of their bytes (the job gives each an ``UNDECODABLE`` dead letter;
  ``tests/pipeline/test_bad_records.py`` checks it);
* a valid request whose *result* is larger than the results topic takes (``INVALID_INPUT``)
  and one that passes validation but makes ONNX Runtime fail (``INTERNAL_ERROR``): both depend
  on the deployed models and the job's limits, not on the record;
* requests with NaN or infinite values, far-future deadlines, ``created_at_ms`` in the future,
  or ids with control or non-ASCII characters: they are valid and owe an OK result, which is
  what the valid traffic is for.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from aimass.contract.codec import HEADER_SIZE, MARKER, Codec
from aimass.contract.limits import MAX_DIMS, MAX_INPUTS, MAX_REQUEST_ID_BYTES
from aimass.contract.messages import InferenceRequest, InferenceResult, Reason, Status, Tensor

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
    "corrupt_body",
    "random_body",
    "bad_dimensions",
    "bad_inputs",
    "bad_dtype",
    "bad_request_id",
    "bad_name",
    "absurd_deadline",
)

#: One line per kind: what its records are (for reports).
DESCRIPTIONS: dict[str, str] = {
    "garbage": "random bytes, not Avro single-object encoding",
    "truncated": "a valid request cut short after its request id",
    "wrong_schema": "a result record, or a request with an unknown schema fingerprint",
    "wrong_shape": "`digits` with 0, 1, 63, 65 or 128 columns instead of 64",
    "wrong_dtype": "`digits` pixels as float64, int64, int32 or uint8 instead of float32",
    "unknown_model": "a model or a version that does not exist",
    "path_traversal": "model or version `..`, `../digits`, `../../etc`, `/etc/passwd`",
    "oversized": "larger than `max_payload_bytes` (every other one as large as the broker takes)",
    "expired_deadline": "`deadline_ms` in the past",
    "corrupt_body": "a readable request id, then a model length past the end, invalid UTF-8, "
    "a 41-bit `priority` or trailing bytes",
    "random_body": "the request marker and fingerprint, then random bytes (no readable id)",
    "bad_dimensions": "shape and data disagree, negative or 2^31 dimensions, a product beyond int64, "
    "zero rows, 32 or 33 dimensions",
    "bad_inputs": "inputs missing, unexpected, repeated, unnamed, none at all or more than 1024",
    "bad_dtype": "a dtype the wire does not carry (`float16`, `string`, ...) or `bool` bytes other than 0 and 1",
    "bad_request_id": "an empty request id, or one longer than 1024 bytes (up to 100 KiB): no result, a dead letter",
    "bad_name": "model or version with non-ASCII or control characters, empty, or 65 bytes to 100 KiB long",
    "absurd_deadline": "`deadline_ms` 0, -1 or -2^63",
}


@dataclass(frozen=True)
class BadRecord:
    """One bad record and the job's required answer to it."""

    kind: str
    value: bytes
    reason: Reason | None
    """The dead-letter reason code the job must give it; None: any (records of
    :mod:`aimass.faults.fuzz`, whose answer is not known beforehand)."""
    request_id: str | None = None
    """Readable request id: the job must also put an error result with :attr:`status` for it."""
    status: Status | None = None
    """None with a request id: a result of any status (a fuzzed record)."""


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
        if near_limit_bytes is not None and near_limit_bytes < max_payload_bytes + 512:
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
            "corrupt_body": self._corrupt_body,
            "random_body": self._random_body,
            "bad_dimensions": self._bad_dimensions,
            "bad_inputs": self._bad_inputs,
            "bad_dtype": self._bad_dtype,
            "bad_request_id": self._bad_request_id,
            "bad_name": self._bad_name,
            "absurd_deadline": self._absurd_deadline,
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

    # -- kinds added with issue 8 ---------------------------------------------------------------

    def _invalid(self, kind: str, rid: str, model: str, inputs: tuple[Tensor, ...],
                 version: str | None = None) -> BadRecord:
        """A request with a readable id that the job refuses as INVALID_INPUT."""
        request = InferenceRequest(rid, model, inputs, int(time.time() * 1000), version)
        return BadRecord(kind, self.codec.encode_request(request), Reason.INVALID_INPUT, rid, Status.INVALID_INPUT)

    def _random_bytes(self, low: int, high: int) -> bytes:
        return bytes(self.rng.getrandbits(8) for _ in range(self.rng.randint(low, high)))

    def _corrupt_body(self, rid: str) -> BadRecord:
        valid = self.codec.encode_request(digits_request(rid, self._pixels()))
        head = valid[:HEADER_SIZE] + avro_string(rid)
        variant = self.rng.choice(["model_past_end", "model_not_utf8", "priority_41_bits", "trailing"])
        if variant == "model_past_end":  # the model's length prefix claims more than follows
            tail = self._random_bytes(0, 64)
            value = head + avro_long(len(tail) + self.rng.randint(1, 1 << 40)) + tail
        elif variant == "model_not_utf8":
            value = head + avro_long(4) + bytes([0xFF, 0xFE, 0xC0, 0x80]) + self._random_bytes(0, 64)
        elif variant == "priority_41_bits":  # an Avro int beyond 32 bits: other readers refuse it
            created = int(time.time() * 1000)
            request = digits_request(rid, self._pixels())
            request = InferenceRequest(rid, "digits", request.inputs, created)
            encoded = self.codec.encode_request(request)
            end = avro_long(0) + avro_long(0) + avro_long(created)  # no deadline, priority 0, created_at_ms
            assert encoded.endswith(end)
            value = encoded[: -len(end)] + avro_long(0) + avro_long(1 << 40) + avro_long(created)
        else:
            value = valid + bytes([self.rng.randint(0, 255)]) + self._random_bytes(0, 15)
        return BadRecord("corrupt_body", value, Reason.UNDECODABLE, rid, Status.INVALID_INPUT)

    def _random_body(self, rid: str) -> BadRecord:
        # The id's length prefix claims more bytes than follow: no id can be read, and no
        # random tail can make the body decode.
        tail = uuid.UUID(int=self.rng.getrandbits(128)).bytes + self._random_bytes(0, 200)
        prefix = avro_long(len(tail) + self.rng.randint(1, 1 << 50))
        value = self.codec.encode_request(digits_request(rid, self._pixels()))[:HEADER_SIZE] + prefix + tail
        return BadRecord("random_body", value, Reason.UNDECODABLE)

    def _bad_dimensions(self, rid: str) -> BadRecord:
        pixels = self._pixels().tobytes()
        shape, data = self.rng.choice([
            ((2, 64), pixels),  # product says 128 elements, data holds 64
            ((1, 63), pixels),
            ((-1, -64), pixels),  # negative: their product matches the data
            ((2**31, 2**31), pixels[:4]),  # product 2^62, data 4 bytes
            ((2**62, 2**62, 2**62), b""),  # product beyond int64
            ((2**63 - 1, 0), b""),  # product 0, data 0: the row count is absurd, the model needs 64 columns
            ((0, 64), b""),  # no rows
            ((1,) * MAX_DIMS, pixels[:4]),  # 32 dimensions: the model takes 2
            ((1,) * (MAX_DIMS + 1), pixels[:4]),  # 33: beyond the wire's limit
        ])
        return self._invalid("bad_dimensions", rid, "digits", (Tensor("pixels", "float32", shape, data),))

    def _bad_inputs(self, rid: str) -> BadRecord:
        pixels = Tensor.from_numpy("pixels", self._pixels())
        other = Tensor.from_numpy("other", self._pixels())
        variant = self.rng.choice(["missing", "extra", "repeated", "unnamed", "none", "too_many"])
        if variant == "too_many" and self.max_payload_bytes < (MAX_INPUTS + 1) * 16 + 1024:
            variant = "none"  # does not fit under the payload limit: refused for another reason
        inputs: tuple[Tensor, ...] = {
            "missing": (Tensor(pixels.name + "x", pixels.dtype, pixels.shape, pixels.data),),
            "extra": (pixels, other),
            "repeated": (pixels, pixels),
            "unnamed": (Tensor("", pixels.dtype, pixels.shape, pixels.data),),
            "none": (),
            # Scalars named by number: small, so this stays below the flood scan's threshold.
            "too_many": (pixels, *(Tensor(str(i), "uint8", (), b"\x00") for i in range(MAX_INPUTS))),
        }[variant]
        return self._invalid("bad_inputs", rid, "digits", inputs)

    def _bad_dtype(self, rid: str) -> BadRecord:
        pixels = self._pixels()
        if self.rng.random() < 0.5:
            dtype = self.rng.choice(["float16", "string", "", "FLOAT32", "complex64", "float32\x00", "ñ"])
            tensor = Tensor("pixels", dtype, pixels.shape, pixels.tobytes())
        else:  # bool elements are one byte, 0 or 1
            data = bytearray(self.rng.getrandbits(1) for _ in range(64))
            data[self.rng.randrange(64)] = self.rng.randint(2, 255)
            tensor = Tensor("pixels", "bool", (1, 64), bytes(data))
        return self._invalid("bad_dtype", rid, "digits", (tensor,))

    def _bad_request_id(self, rid: str) -> BadRecord:
        longest = min(self.max_payload_bytes // 4, 100 * 1024)
        # Room for the rest of the request (one row of pixels) under the payload limit.
        sizes = [n for n in (MAX_REQUEST_ID_BYTES + 1, 4 * MAX_REQUEST_ID_BYTES, longest)
                 if MAX_REQUEST_ID_BYTES < n <= self.max_payload_bytes - 1024]
        if not sizes or self.rng.random() < 0.3:
            request_id = ""
        else:
            size = self.rng.choice(sizes)
            request_id = (rid + "-" + "x" * size)[: max(size, len(rid) + 1)]
        request = digits_request(request_id, self._pixels())
        # No id the job answers to: a dead letter only.
        return BadRecord("bad_request_id", self.codec.encode_request(request), Reason.INVALID_INPUT)

    def _bad_name(self, rid: str) -> BadRecord:
        longest = max(65, min(self.max_payload_bytes // 4, 100 * 1024))  # a long name took minutes to route
        name = self.rng.choice(
            ["цифры", "digits\x00", "dig its", "digits\n", "", "m" * 65, "m" * longest, "🙂", "digits/"]
        )
        pixels = (Tensor.from_numpy("pixels", self._pixels()),)
        if self.rng.random() < 0.5:
            return self._invalid("bad_name", rid, name, pixels)
        return self._invalid("bad_name", rid, "digits", pixels, version=name)

    def _absurd_deadline(self, rid: str) -> BadRecord:
        deadline = self.rng.choice([0, -1, -(2**63)])
        value = self.codec.encode_request(digits_request(rid, self._pixels(), deadline_ms=deadline))
        return BadRecord("absurd_deadline", value, Reason.DEADLINE_EXCEEDED, rid, Status.DEADLINE_EXCEEDED)


def avro_long(value: int) -> bytes:
    """Avro ``long``: zig-zag, then base-128 varint."""
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def avro_string(text: str) -> bytes:
    """Avro ``string``: length, then UTF-8."""
    data = text.encode("utf-8")
    return avro_long(len(data)) + data
