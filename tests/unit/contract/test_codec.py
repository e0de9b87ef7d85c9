"""The Avro single-object codec: exact bytes, round trips, and refusal of every bad record."""

from __future__ import annotations

import io
import json
import struct
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aimass.contract.codec import Codec, DecodeError
from aimass.contract.limits import MAX_DIMS, MAX_INPUTS, MAX_REQUEST_ID_BYTES, NAME_PATTERN, SCAN_ABOVE_BYTES
from aimass.contract.messages import (
    DTYPES,
    DeadLetter,
    InferenceRequest,
    InferenceResult,
    Reason,
    Status,
    Tensor,
    Timings,
)
from aimass.settings import PathSettings

SCHEMAS = PathSettings().schemas_dir
CODEC = Codec(SCHEMAS)
SCANNING = Codec(SCHEMAS, scan_above_bytes=0)  # scans every request before decoding it
REQUEST_FP = bytes.fromhex("352709eb427659dd")
RESULT_FP = bytes.fromhex("f6e03e2ab71bdb44")
DEAD_LETTER_FP = bytes.fromhex("b8d871434daaae3b")
REQUEST_HEADER = b"\xc3\x01" + REQUEST_FP
MAX_BYTES = 4 * 1024 * 1024


def _long(n: int) -> bytes:
    """Avro zig-zag varint."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(raw: bytes | str) -> bytes:
    data = raw.encode() if isinstance(raw, str) else raw
    return _long(len(data)) + data


def _f32(*values: float) -> bytes:
    return np.array(values, dtype="<f4").tobytes()


def request(*inputs: Tensor, **fields: object) -> InferenceRequest:
    """A valid one-row request unless told otherwise."""
    base: dict[str, object] = {"request_id": "r-1", "model": "iris", "created_at_ms": 1_700_000_000_000}
    base.update(fields)
    tensors = inputs or (Tensor("x", "float32", (1, 2), _f32(1.0, 2.0)),)
    return InferenceRequest(inputs=tensors, **base)  # type: ignore[arg-type]


def refuse_measured(data: bytes, max_bytes: int | None = None) -> tuple[DecodeError, float, int]:
    """:func:`decode_error` of ``data``, the seconds it took and its peak traced allocation in bytes."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        error = decode_error(data, max_bytes)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return error, time.perf_counter() - started, peak


def decode_error(data: bytes, max_bytes: int | None = None) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        CODEC.decode_request(data, max_bytes)
    return info.value


# -- the fingerprint is the spec's CRC-64-AVRO of the Parsing Canonical Form -------------------

_EMPTY64 = 0xC15D213AA4D7A795


def _spec_crc64_avro(data: bytes) -> bytes:
    """The algorithm as printed in the Avro specification, written out independently."""
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY64 & -(fp & 1))
        table.append(fp)
    fp = _EMPTY64
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp.to_bytes(8, "little")


def test_fingerprints_are_the_ones_on_the_wire() -> None:
    assert CODEC.fingerprints == {
        "ai.aimass.InferenceRequest": REQUEST_FP,
        "ai.aimass.InferenceResult": RESULT_FP,
        "ai.aimass.DeadLetter": DEAD_LETTER_FP,
    }


def test_fingerprints_match_the_reference_avro_implementation() -> None:
    import avro.schema as avro_schema  # installed with apache-flink
    names = avro_schema.Names()
    avro_schema.make_avsc_object(json.loads((SCHEMAS / "tensor.avsc").read_text()), names)
    for file, full_name in [
        ("request.avsc", "ai.aimass.InferenceRequest"),
        ("result.avsc", "ai.aimass.InferenceResult"),
        ("dead_letter.avsc", "ai.aimass.DeadLetter"),
    ]:
        schema = avro_schema.make_avsc_object(json.loads((SCHEMAS / file).read_text()), names)
        canonical = schema.canonical_form.encode()
        assert _spec_crc64_avro(canonical) == schema.fingerprint("CRC-64-AVRO") == CODEC.fingerprints[full_name]


def test_codec_loads_schemas_from_the_given_folder(tmp_path: Path) -> None:
    for file in SCHEMAS.glob("*.avsc"):
        (tmp_path / file.name).write_text(file.read_text())
    assert Codec(tmp_path).fingerprints == CODEC.fingerprints
    assert Codec().fingerprints == CODEC.fingerprints


# -- exact bytes: a change of the wire format fails here ---------------------------------------

EXACT = [
    (
        request(),
        "c3 01 35 27 09 eb 42 76 59 dd 06 72 2d 31 08 69 72 69 73 00 02 02 78 0e 66 6c 6f 61 74 33 32 04 02"
        " 04 00 10 00 00 80 3f 00 00 00 40 00 00 00 80 a0 ab fe f9 62",
    ),
    (
        request(
            Tensor("x", "int64", (2, 1), np.array([1, -1], "<i8").tobytes()),
            Tensor("m", "bool", (2,), b"\x01\x00"),
            request_id="r-2", version="3", deadline_ms=1_700_000_001_000, priority=-1,
        ),
        "c3 01 35 27 09 eb 42 76 59 dd 06 72 2d 32 08 69 72 69 73 02 02 33 04 02 78 0a 69 6e 74 36 34 04 04"
        " 02 00 20 01 00 00 00 00 00 00 00 ff ff ff ff ff ff ff ff 02 6d 08 62 6f 6f 6c 02 04 00 04 01 00 00"
        " 02 d0 af ab fe f9 62 01 80 a0 ab fe f9 62",
    ),
    (
        InferenceResult(
            "r-1", "iris", Status.OK, 1_700_000_000_050, "3",
            (Tensor("y", "int64", (1,), np.array([2], "<i8").tobytes()),), None, Timings(0.5, 4, 1.25, 50.0),
        ),
        "c3 01 f6 e0 3e 2a b7 1b db 44 02 06 72 2d 31 08 69 72 69 73 02 02 33 00 02 02 79 0a 69 6e 74 36 34"
        " 02 02 00 10 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 e0 3f 08 00 00 00 00 00 00 f4 3f 00"
        " 00 00 00 00 00 49 40 e4 a0 ab fe f9 62 00 00",
    ),
    (
        InferenceResult(None, "", Status.INVALID_INPUT, 1_700_000_000_050, error="UNDECODABLE: x"),
        "c3 01 f6 e0 3e 2a b7 1b db 44 00 00 00 02 00 02 1c 55 4e 44 45 43 4f 44 41 42 4c 45 3a 20 78 00 00"
        " 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 e4 a0 ab fe f9 62 00 00",
    ),
    (
        DeadLetter(b"\x00\xff", "aimass.requests", 3, 42, Reason.UNDECODABLE, "bad", 1_700_000_000_050),
        "c3 01 b8 d8 71 43 4d aa ae 3b 04 00 ff 1e 61 69 6d 61 73 73 2e 72 65 71 75 65 73 74 73 06 54 00 06"
        " 62 61 64 00 e4 a0 ab fe f9 62",
    ),
]


def _encode(message: object) -> bytes:
    if isinstance(message, InferenceRequest):
        return CODEC.encode_request(message)
    if isinstance(message, InferenceResult):
        return CODEC.encode_result(message)
    assert isinstance(message, DeadLetter)
    return CODEC.encode_dead_letter(message)


def _decode(like: object, data: bytes) -> object:
    if isinstance(like, InferenceRequest):
        return CODEC.decode_request(data)
    if isinstance(like, InferenceResult):
        return CODEC.decode_result(data)
    return CODEC.decode_dead_letter(data)


@pytest.mark.parametrize(("message", "wire"), EXACT, ids=[f"{type(m).__name__}-{i}" for i, (m, _) in enumerate(EXACT)])
def test_encoding_is_exactly_these_bytes(message: object, wire: str) -> None:
    assert _encode(message).hex(" ") == wire


@pytest.mark.parametrize(("message", "wire"), EXACT, ids=[f"{type(m).__name__}-{i}" for i, (m, _) in enumerate(EXACT)])
def test_these_bytes_decode_to_exactly_the_message(message: object, wire: str) -> None:
    assert _decode(message, bytes.fromhex(wire)) == message


def test_request_body_matches_the_reference_avro_implementation() -> None:
    import avro.io as avro_io
    import avro.schema as avro_schema  # installed with apache-flink
    names = avro_schema.Names()
    avro_schema.make_avsc_object(json.loads((SCHEMAS / "tensor.avsc").read_text()), names)
    schema = avro_schema.make_avsc_object(json.loads((SCHEMAS / "request.avsc").read_text()), names)
    record = {
        "request_id": "r-1", "model": "iris", "version": None, "deadline_ms": None, "priority": 0,
        "inputs": [{"name": "x", "dtype": "float32", "shape": [1, 2], "data": _f32(1.0, 2.0)}],
        "created_at_ms": 1_700_000_000_000,
    }
    body = io.BytesIO()
    avro_io.DatumWriter(schema).write(record, avro_io.BinaryEncoder(body))
    assert CODEC.encode_request(request()) == REQUEST_HEADER + body.getvalue()


def test_schema_readme_worked_example_is_the_real_encoding() -> None:
    readme = " ".join((SCHEMAS / "README.md").read_text().split())
    assert EXACT[0][1] in readme  # the hex dump, whatever its line breaks
    for full_name, fp in CODEC.fingerprints.items():
        assert fp.hex(" ") in readme, full_name
        assert f"0x{int.from_bytes(fp, 'little'):016x}" in readme, full_name


# -- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_every_dtype_round_trips_with_several_rows(dtype: str) -> None:
    rng = np.random.default_rng(7)
    array = (rng.random((3, 4, 2)) * 100).astype(DTYPES[dtype]) if dtype != "bool" else rng.random((3, 4, 2)) > 0.5
    req = request(Tensor.from_numpy("x", array))
    back = CODEC.decode_request(CODEC.encode_request(req))
    assert back == req
    assert back.rows == 3
    np.testing.assert_array_equal(back.inputs[0].to_numpy(), array)


def test_several_inputs_with_the_same_rows_round_trip() -> None:
    req = request(
        Tensor.from_numpy("a", np.arange(6, dtype=np.float32).reshape(2, 3)),
        Tensor.from_numpy("b", np.array([1, 2], dtype=np.int64)),
        Tensor.from_numpy("c", np.zeros((2, 0), dtype=np.uint8)),
        version="v1.2", deadline_ms=5, priority=2**31 - 1,
    )
    assert CODEC.decode_request(CODEC.encode_request(req)) == req


def test_result_with_outputs_round_trips() -> None:
    probs = np.array([[0.1, 0.9], [0.7, 0.3]], dtype=np.float32)
    res = InferenceResult(
        "r-1", "iris", Status.OK, 9, "1", (Tensor.from_numpy("probs", probs),), None, Timings(1.5, 2, 0.25, 12.0)
    )
    back = CODEC.decode_result(CODEC.encode_result(res))
    assert back == res
    np.testing.assert_array_equal(back.output("probs"), probs)


# -- every reason a request is refused ---------------------------------------------------------


def test_oversized_request_is_refused_with_its_id() -> None:
    data = CODEC.encode_request(request())
    error = decode_error(data, max_bytes=len(data) - 1)
    assert (error.reason, error.request_id) == (Reason.OVERSIZED, "r-1")
    assert CODEC.decode_request(data, max_bytes=len(data)) == request()


@pytest.mark.parametrize(
    ("message", "named"),
    [
        (InferenceResult("r-1", "iris", Status.OK, 1), "InferenceResult"),
        (DeadLetter(b"", "t", 0, 0, Reason.UNDECODABLE, "m", 1), "DeadLetter"),
    ],
)
def test_another_known_schema_is_wrong_schema_naming_it(message: object, named: str) -> None:
    error = decode_error(_encode(message))
    assert error.reason is Reason.WRONG_SCHEMA
    assert named in error.message
    assert error.request_id is None


def test_unknown_fingerprint_is_wrong_schema() -> None:
    data = bytearray(CODEC.encode_request(request()))
    data[2] ^= 0xFF
    error = decode_error(bytes(data))
    assert error.reason is Reason.WRONG_SCHEMA
    assert "unknown schema fingerprint" in error.message


def test_results_and_dead_letters_refuse_requests_as_wrong_schema() -> None:
    data = CODEC.encode_request(request())
    for decode in (CODEC.decode_result, CODEC.decode_dead_letter):
        with pytest.raises(DecodeError) as info:
            decode(data)
        assert info.value.reason is Reason.WRONG_SCHEMA
        assert "InferenceRequest" in info.value.message


_BODY = CODEC.encode_request(request())[10:]

UNDECODABLE = {
    "empty": (b"", None),
    "no marker (a bare Avro body)": (_BODY, None),
    "json": (b'{"request_id": "r-1"}', None),
    "truncated header": (REQUEST_HEADER[:6], None),
    "header only": (REQUEST_HEADER, None),
    "truncated body": (REQUEST_HEADER + _BODY[:-3], "r-1"),
    "trailing garbage": (REQUEST_HEADER + _BODY + b"\x00", "r-1"),
    "invalid utf-8 in model": (REQUEST_HEADER + _str("r-1") + _str(b"\xff\xfe") + _BODY[9:], "r-1"),
    "invalid utf-8 in request id": (REQUEST_HEADER + _str(b"r\xff") + _BODY[4:], None),
    "union branch out of range": (REQUEST_HEADER + _str("r-1") + _str("iris") + _long(5), "r-1"),
    "overlong varint": (REQUEST_HEADER + b"\xff" * 20, None),
    "negative string length": (REQUEST_HEADER + _long(-4) + b"abcdefgh", None),
    "priority beyond 32 bits": (REQUEST_HEADER + _BODY[:-7] + _long(2**40) + _BODY[-6:], "r-1"),
}


@pytest.mark.parametrize(("data", "request_id"), UNDECODABLE.values(), ids=list(UNDECODABLE))
def test_malformed_bytes_are_undecodable(data: bytes, request_id: str | None) -> None:
    error = decode_error(data)
    assert error.reason is Reason.UNDECODABLE, error.message
    assert error.request_id == request_id


def test_value_that_is_not_bytes_is_undecodable() -> None:
    for value in (None, "text", 42):
        error = decode_error(value)  # type: ignore[arg-type]
        assert error.reason is Reason.UNDECODABLE


def test_bytearray_and_memoryview_decode_like_bytes() -> None:
    data = CODEC.encode_request(request())
    assert CODEC.decode_request(bytearray(data)) == CODEC.decode_request(memoryview(data)) == request()  # type: ignore[arg-type]


_X = Tensor("x", "float32", (1, 2), _f32(1.0, 2.0))

INVALID = {
    "empty request id": (request(request_id=""), "request_id"),
    "path traversal in model": (request(model="../x"), "model"),
    "slash in model": (request(model="a/b"), "model"),
    "model starting with a dot": (request(model=".hidden"), "model"),
    "empty model": (request(model=""), "model"),
    "model of 65 characters": (request(model="m" * 65), "model"),
    "model with a trailing newline": (request(model="iris\n"), "model"),
    "path traversal in version": (request(version="../1"), "version"),
    "empty version": (request(version=""), "version"),
    "unknown dtype": (request(Tensor("x", "float16", (1, 2), b"\0" * 4)), "float16"),
    "negative dimension": (request(Tensor("x", "float32", (1, -2), b"")), "negative"),
    "too few bytes": (request(Tensor("x", "float32", (1, 2), b"\0" * 7)), "needs 8 bytes, got 7"),
    "too many bytes": (request(Tensor("x", "float32", (1, 2), b"\0" * 9)), "needs 8 bytes, got 9"),
    "huge shape": (request(Tensor("x", "uint8", (2**40, 2**40), b"")), "needs"),
    "too many dimensions": (request(Tensor("x", "uint8", (1,) * 33, b"\0")), "more than 32 dimensions"),
    "bool byte other than 0 or 1": (request(Tensor("b", "bool", (1, 2), b"\x01\x02")), "bool"),
    "duplicate input names": (request(_X, _X), "duplicate"),
    "no inputs": (InferenceRequest("r-1", "iris", (), 1), "no inputs"),
    "differing rows": (request(_X, Tensor("y", "float32", (2,), _f32(1.0, 2.0))), "first dimension"),
}


@pytest.mark.parametrize(("req", "says"), INVALID.values(), ids=list(INVALID))
def test_semantically_invalid_request_is_invalid_input_with_its_id(req: InferenceRequest, says: str) -> None:
    error = decode_error(CODEC.encode_request(req))
    assert error.reason is Reason.INVALID_INPUT
    assert says in error.message
    assert error.request_id == (req.request_id or None)


def test_model_names_that_are_safe_path_components_are_accepted() -> None:
    for name in ("iris", "Iris_2", "0", "_x", "a.b-c", "m" * 64, "a..b"):
        assert CODEC.decode_request(CODEC.encode_request(request(model=name, version=name))).model == name


# -- hostile length prefixes fail fast, without allocating what they claim ---------------------

_HEAD = _str("r-1") + _str("m") + _long(0)  # request_id, model, version null
_ONE_TENSOR = _HEAD + _long(1) + _str("x") + _str("uint8")  # inputs: a block of 1, name, dtype

HOSTILE = {
    "string of 2^60 bytes": _long(2**60) + b"ab",
    "2^60 inputs": _HEAD + _long(2**60) + b"\0" * 16,
    "negative block of 2^60 inputs": _HEAD + _long(-(2**60)) + _long(2**62),
    "shape of 2^60 dimensions": _ONE_TENSOR + _long(2**60),
    "data of 2^62 bytes": _ONE_TENSOR + _long(0) + _long(2**62),
    "data of negative length": _ONE_TENSOR + _long(0) + _long(-3) + b"\0" * 8,
}


@pytest.mark.parametrize("body", HOSTILE.values(), ids=list(HOSTILE))
def test_hostile_length_prefix_fails_fast_without_allocating(body: bytes) -> None:
    error, seconds, peak = refuse_measured(REQUEST_HEADER + body)
    assert error.reason is Reason.UNDECODABLE
    assert seconds < 1.0
    assert peak < 1_000_000


_EMPTY_TENSOR = _long(1) + b"\0\0\0\0"  # a block of one tensor: no name, dtype, shape or data
_SHAPED_TENSOR = _long(1) + b"\0\0" + (_long(1) + b"\0") * MAX_DIMS + b"\0\0"  # 32 dims, blocks of 1
_MIB4 = 4 * 1024 * 1024

FLOODS = {
    "a million empty tensors in one block": _HEAD + _long(_MIB4 // 4 - 8) + b"\0" * (_MIB4 - 40),
    "a million empty tensors in blocks of one": _HEAD + _EMPTY_TENSOR * (_MIB4 // 5 - 8),
    "four million dimensions": _HEAD + _long(1) + b"\0\0" + _long(_MIB4 - 32) + b"\0" * (_MIB4 - 32),
    "the most work the scan can be made to do": _HEAD + _SHAPED_TENSOR * MAX_INPUTS + _EMPTY_TENSOR * 1000,
}


@pytest.mark.parametrize("body", FLOODS.values(), ids=list(FLOODS))
def test_object_flood_is_refused_before_decoding(body: bytes) -> None:
    # Unscanned, the first of these takes seconds and ~350 MB to decode into a million dicts.
    data = REQUEST_HEADER + body
    assert len(data) > SCAN_ABOVE_BYTES
    error, seconds, peak = refuse_measured(data, MAX_BYTES)
    assert (error.reason, error.request_id) == (Reason.INVALID_INPUT, "r-1")
    assert "more than" in error.message
    assert seconds < 2.0
    assert peak < 1_000_000


_COUNT = _MIB4 // 4 - 64  # a block of this many empty tensors fills 4 MiB
LAX_FLOODS = {
    # fastavro takes a union branch of -1 as the last branch (the version string); the scan
    # used to skip only branch 1, lose its place and let the decoder build a million dicts.
    "version under union branch -1": _str("r-1") + _str("m") + _long(-1) + _str("1") + _long(_COUNT)
    + b"\0\0\0\0" * _COUNT + b"\0\0\0\0",
    # fastavro reads varints past 10 bytes; the scan cannot (no Avro long is that long).
    "inputs count as an 11-byte varint": _HEAD + _long(_COUNT)[:-1] + bytes([_long(_COUNT)[-1] | 0x80])
    + b"\x80" * (10 - len(_long(_COUNT))) + b"\x00" + b"\0\0\0\0" * _COUNT,
}


@pytest.mark.parametrize("body", LAX_FLOODS.values(), ids=list(LAX_FLOODS))
def test_a_flood_the_scan_cannot_follow_is_refused_not_decoded(body: bytes) -> None:
    data = REQUEST_HEADER + body
    assert SCAN_ABOVE_BYTES < len(data) <= MAX_BYTES
    error, seconds, peak = refuse_measured(data, MAX_BYTES)
    assert (error.reason, error.request_id) == (Reason.UNDECODABLE, "r-1")
    assert seconds < 1.0 and peak < 1_000_000


def test_input_count_limit_is_the_same_for_small_records() -> None:
    most = [Tensor(f"i{n}", "uint8", (1,), b"\0") for n in range(MAX_INPUTS)]
    assert len(CODEC.decode_request(CODEC.encode_request(request(*most))).inputs) == MAX_INPUTS
    for codec in (CODEC, SCANNING):
        with pytest.raises(DecodeError, match=f"more than {MAX_INPUTS} inputs") as info:
            codec.decode_request(CODEC.encode_request(request(*most, Tensor("extra", "uint8", (1,), b"\0"))))
        assert info.value.reason is Reason.INVALID_INPUT


def test_dimension_limit_is_the_same_with_and_without_the_scan() -> None:
    ok = CODEC.encode_request(request(Tensor("x", "uint8", (1,) * MAX_DIMS, b"\0")))
    too_many = CODEC.encode_request(request(Tensor("x", "uint8", (1,) * (MAX_DIMS + 1), b"\0")))
    for codec in (CODEC, SCANNING):
        assert codec.decode_request(ok).inputs[0].shape == (1,) * MAX_DIMS
        with pytest.raises(DecodeError, match=f"more than {MAX_DIMS} dimensions"):
            codec.decode_request(too_many)


# -- peeking at the request id -----------------------------------------------------------------


def test_peek_reads_the_id_of_a_truncated_request() -> None:
    data = CODEC.encode_request(request(request_id="abc-123"))
    assert CODEC.peek_request_id(data[:18]) == "abc-123"
    assert CODEC.peek_request_id(data[:17]) is None


@pytest.mark.parametrize(
    "data", [b"", b"\xc3\x01", REQUEST_HEADER, REQUEST_HEADER + _long(0), REQUEST_HEADER + _str(b"\xff"),
             REQUEST_HEADER + b"\xff" * 12, CODEC.encode_result(InferenceResult("r-1", "m", Status.OK, 1))],
)
def test_peek_returns_none_when_no_id_can_be_read(data: bytes) -> None:
    assert CODEC.peek_request_id(data) is None


# -- encoding refuses values other Avro readers would reject -----------------------------------


def test_encoding_an_int_field_beyond_32_bits_is_refused() -> None:
    with pytest.raises(ValueError, match="priority"):
        CODEC.encode_request(request(priority=2**31))
    with pytest.raises(ValueError, match="partition"):
        CODEC.encode_dead_letter(DeadLetter(b"", "t", 2**32, 0, Reason.UNDECODABLE, "m", 1))
    with pytest.raises(ValueError, match="batch_size"):
        CODEC.encode_result(InferenceResult("r", "m", Status.OK, 1, timings=Timings(batch_size=-(2**31) - 1)))


def test_encoding_a_wrongly_typed_field_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="InferenceRequest"):
        CODEC.encode_request(request(model=None))
    with pytest.raises(ValueError, match="InferenceRequest"):
        CODEC.encode_request(request(created_at_ms=2**64))


# -- properties --------------------------------------------------------------------------------

names = st.from_regex(NAME_PATTERN, fullmatch=True)
int32 = st.integers(-(2**31), 2**31 - 1)
int64 = st.integers(-(2**63), 2**63 - 1)
floats = st.floats(allow_nan=False)


@st.composite
def tensors(draw: st.DrawFn, rows: int | None = None, name: str | None = None) -> Tensor:
    dtype = draw(st.sampled_from(list(DTYPES)))
    rest = draw(st.lists(st.integers(0, 4), max_size=3))
    shape = tuple(([draw(st.integers(0, 4))] if rows is None else [rows]) + rest)
    count = int(np.prod(shape))
    if dtype == "bool":
        data = bytes(draw(st.lists(st.integers(0, 1), min_size=count, max_size=count)))
    else:
        data = draw(st.binary(min_size=count * DTYPES[dtype].itemsize, max_size=count * DTYPES[dtype].itemsize))
    return Tensor(name if name is not None else draw(st.text(max_size=8)), dtype, shape, data)


@st.composite
def requests(draw: st.DrawFn) -> InferenceRequest:
    rows = draw(st.integers(0, 4))
    input_names = draw(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=3, unique=True))
    return InferenceRequest(
        request_id=draw(st.text(min_size=1, max_size=40)),
        model=draw(names),
        inputs=tuple(draw(tensors(rows, n)) for n in input_names),
        created_at_ms=draw(int64),
        version=draw(st.none() | names),
        deadline_ms=draw(st.none() | int64),
        priority=draw(int32),
    )


results = st.builds(
    InferenceResult,
    request_id=st.none() | st.text(max_size=40),
    model=st.text(max_size=20),
    status=st.sampled_from(Status),
    completed_at_ms=int64,
    version=st.none() | st.text(max_size=10),
    outputs=st.lists(tensors(), max_size=3).map(tuple),
    error=st.none() | st.text(max_size=40),
    timings=st.builds(Timings, floats, int32, floats, floats),
)

dead_letters = st.builds(
    DeadLetter,
    original=st.binary(max_size=64),
    topic=st.text(max_size=20),
    partition=int32,
    offset=int64,
    reason=st.sampled_from(Reason),
    message=st.text(max_size=40),
    at_ms=int64,
    request_id=st.none() | st.text(max_size=40),
)


@given(requests())
def test_any_valid_request_round_trips(req: InferenceRequest) -> None:
    data = CODEC.encode_request(req)
    assert CODEC.decode_request(data) == req
    assert SCANNING.decode_request(data) == req
    assert CODEC.peek_request_id(data) == req.request_id


@given(results)
def test_any_result_round_trips(res: InferenceResult) -> None:
    assert CODEC.decode_result(CODEC.encode_result(res)) == res


@given(dead_letters)
def test_any_dead_letter_round_trips(dl: DeadLetter) -> None:
    assert CODEC.decode_dead_letter(CODEC.encode_dead_letter(dl)) == dl


def _decodes_or_refuses(data: bytes) -> None:
    """Each decoder either returns its message or raises DecodeError: nothing else escapes."""
    for codec in (CODEC, SCANNING):
        try:
            codec.decode_request(data, MAX_BYTES)
        except DecodeError as exc:
            assert isinstance(exc.reason, Reason)
    for decode in (CODEC.decode_result, CODEC.decode_dead_letter):
        try:
            decode(data)
        except DecodeError as exc:
            assert exc.reason in (Reason.UNDECODABLE, Reason.WRONG_SCHEMA)
    peeked = CODEC.peek_request_id(data)
    assert peeked is None or isinstance(peeked, str)


@given(st.binary(max_size=512))
def test_random_bytes_only_ever_raise_decode_error(data: bytes) -> None:
    _decodes_or_refuses(data)


@given(st.sampled_from([REQUEST_HEADER, b"\xc3\x01" + RESULT_FP, b"\xc3\x01" + DEAD_LETTER_FP]),
       st.binary(max_size=512))
def test_random_body_after_a_valid_header_only_ever_raises_decode_error(header: bytes, body: bytes) -> None:
    _decodes_or_refuses(header + body)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(requests().map(CODEC.encode_request), results.map(CODEC.encode_result),
                 dead_letters.map(CODEC.encode_dead_letter)), st.data())
def test_truncated_and_mutated_encodings_only_ever_raise_decode_error(data: bytes, draw: st.DataObject) -> None:
    cut = draw.draw(st.integers(0, len(data)))
    _decodes_or_refuses(data[:cut])
    mutated = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 4))):
        position = draw.draw(st.integers(0, len(mutated) - 1))
        action = draw.draw(st.sampled_from(["replace", "insert", "delete"]))
        if action == "replace":
            mutated[position] = draw.draw(st.integers(0, 255))
        elif action == "insert":
            mutated.insert(position, draw.draw(st.integers(0, 255)))
        elif len(mutated) > 1:
            del mutated[position]
    _decodes_or_refuses(bytes(mutated))


@given(requests(), st.integers(0, 10))
def test_truncated_request_is_undecodable_and_keeps_its_id_once_readable(req: InferenceRequest, short: int) -> None:
    data = CODEC.encode_request(req)
    cut = max(len(data) - 1 - short, 0)
    error = decode_error(data[:cut])
    assert error.reason is Reason.UNDECODABLE
    assert error.request_id in (None, req.request_id)
    if cut >= 10 + len(_str(req.request_id)):
        assert error.request_id == req.request_id


def test_float_bits_survive_including_nan_infinity_and_negative_zero() -> None:
    raw = struct.pack("<3d", float("nan"), -0.0, float("inf"))
    req = request(Tensor("x", "float64", (1, 3), raw))
    assert CODEC.decode_request(CODEC.encode_request(req)).inputs[0].data == raw


def test_peek_route_reads_id_and_model_without_decoding() -> None:
    codec = CODEC
    request = InferenceRequest("req-1", "digits", (Tensor.from_numpy("x", np.zeros((1, 2), np.float32)),), 0)
    data = codec.encode_request(request)
    assert codec.peek_route(data) == ("req-1", "digits")
    assert codec.peek_route(data[: len(REQUEST_HEADER) + 3]) is None  # cut inside the id
    assert codec.peek_route(b"not avro") is None
    assert codec.peek_route(codec.encode_result(InferenceResult("req-1", "digits", Status.OK, 0))) is None


# -- issue 8: hostile ids, names and dimensions ---------------------------------------------------

PIXELS = Tensor("pixels", "float32", (1, 2), _f32(1.0, 2.0))


@pytest.mark.parametrize("request_id", ["a\x00b", "\x01\x1f\x7f", "ид-日本-🙂", "x" * MAX_REQUEST_ID_BYTES,
                                        "й" * (MAX_REQUEST_ID_BYTES // 2)])
def test_ids_with_control_or_non_ascii_characters_up_to_the_limit_are_read(request_id: str) -> None:
    data = CODEC.encode_request(request(PIXELS, request_id=request_id))
    assert CODEC.decode_request(data).request_id == request_id
    assert CODEC.peek_request_id(data) == request_id
    assert CODEC.peek_route(data) == (request_id, "iris")


@pytest.mark.parametrize("size", [MAX_REQUEST_ID_BYTES + 1, 100 * 1024, 3 * 1024 * 1024])
def test_an_id_longer_than_the_limit_is_invalid_and_not_read(size: int) -> None:
    # An id the size of the payload made a result and a dead letter larger than the output
    # topics take: the sink failed and the job restarted on the same record, forever.
    data = CODEC.encode_request(request(PIXELS, request_id="i" * size))
    with pytest.raises(DecodeError) as caught:
        CODEC.decode_request(data, MAX_BYTES)
    assert caught.value.reason is Reason.INVALID_INPUT and caught.value.request_id is None
    assert f"{size} bytes exceeds {MAX_REQUEST_ID_BYTES}" in caught.value.message
    assert CODEC.peek_request_id(data) is None and CODEC.peek_route(data) is None
    # Two-byte characters: the limit is in bytes.
    with pytest.raises(DecodeError) as caught:
        CODEC.decode_request(CODEC.encode_request(request(PIXELS, request_id="й" * (MAX_REQUEST_ID_BYTES // 2 + 1))))
    assert caught.value.request_id is None


def test_an_oversized_or_truncated_record_with_a_long_id_has_no_readable_id() -> None:
    data = CODEC.encode_request(request(PIXELS, request_id="i" * (MAX_REQUEST_ID_BYTES + 1)))
    for value, max_bytes in ((data, len(data) - 1), (data[:-3], None)):
        with pytest.raises(DecodeError) as caught:
            CODEC.decode_request(value, max_bytes)
        assert caught.value.request_id is None


@pytest.mark.parametrize("model", ["цифры", "m" * 65, "m" * 200_000, "dig its", "digits\x00", "../digits", ".x", ""])
def test_peek_route_refuses_a_model_that_is_not_a_name(model: str) -> None:
    # A routed model "name" of 100 KB took 16 s to hash into a lane key (minutes for 4 MiB),
    # stalling the whole job; the router now gives such a record to the full decoder.
    data = CODEC.encode_request(request(PIXELS, request_id="r", model=model))
    started = time.perf_counter()
    assert CODEC.peek_route(data) is None
    assert time.perf_counter() - started < 0.05
    with pytest.raises(DecodeError) as caught:
        CODEC.decode_request(data)
    assert (caught.value.reason, caught.value.request_id) == (Reason.INVALID_INPUT, "r")
    assert len(caught.value.message) < 200


@pytest.mark.parametrize(
    ("shape", "data", "says"),
    [
        ((2, 2), _f32(1, 2), "needs 16 bytes, got 8"),
        ((2**31, 2**31), _f32(1), "needs 18446744073709551616 bytes"),
        ((2**62, 2**62, 2**62), b"", "needs"),
        ((2**63 - 1, 2), b"", "needs"),
        ((-1, -2), _f32(1, 2), "negative dimension"),
        ((-(2**63), 0), b"", "negative dimension"),
        ((1,) * (MAX_DIMS + 1), _f32(1), f"more than {MAX_DIMS} dimensions"),
    ],
)
def test_impossible_shapes_are_invalid_input_without_allocating(shape: tuple[int, ...], data: bytes, says: str) -> None:
    value = CODEC.encode_request(request(Tensor("x", "float32", shape, data), request_id="r"))
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError) as caught:
            CODEC.decode_request(value)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (caught.value.reason, caught.value.request_id) == (Reason.INVALID_INPUT, "r")
    assert says in caught.value.message
    assert peak < 1 << 20


def test_shapes_at_the_limits_that_are_consistent_decode() -> None:
    for shape, data in (((0, 2**62), b""), ((1,) * MAX_DIMS, _f32(1)), ((2**63 - 1, 0), b"")):
        decoded = CODEC.decode_request(CODEC.encode_request(request(Tensor("x", "float32", shape, data))))
        assert decoded.inputs[0].shape == shape  # the engine refuses them against the model


def test_a_graph_result_round_trips_with_its_steps_and_missing_members() -> None:
    from aimass.contract.messages import GraphOutcome, StepTiming

    steps = (StepTiming("vote/v1", "digits", "1", "OK", 8, 0.25, 1.5),
             StepTiming("vote/v2", "digits", "2", "DEADLINE_EXCEEDED"))
    result = InferenceResult("r-1", "digits-vote", Status.OK, 1_700_000_000_050, "1",
                             (Tensor("label", "int64", (1,), np.array([3], "<i8").tobytes()),),
                             graph=GraphOutcome(True, ("vote/v2",), steps))
    decoded = CODEC.decode_result(CODEC.encode_result(result))
    assert decoded == result
    plain = CODEC.decode_result(CODEC.encode_result(InferenceResult("r-2", "digits", Status.OK, 1)))
    assert plain.graph is None
