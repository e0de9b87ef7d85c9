"""Properties of every decoder that tests/unit/contract/test_codec.py does not state already.

test_codec.py has the round trips of random requests, results and dead letters, random bytes,
random bodies after a valid header, and truncated or byte-mutated encodings. Here: every dtype
round-tripped on its own, structured mutations (splices, swapped headers, trailing bytes,
repeated framing), non-bytes values, the payload limit at its boundary, and the agreement of
``peek_request_id`` with the full decoder. Nothing may escape but DecodeError.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aimass.contract.codec import HEADER_SIZE, Codec, DecodeError
from aimass.contract.limits import MAX_REQUEST_ID_BYTES, NAME_PATTERN
from aimass.contract.messages import DTYPES, DeadLetter, InferenceRequest, InferenceResult, Reason, Status, Tensor

CODEC = Codec()
HEADERS = [fp for fp in CODEC.fingerprints.values()]
DECODERS = {
    "request": lambda data: CODEC.decode_request(data, 1 << 20),
    "result": CODEC.decode_result,
    "dead_letter": CODEC.decode_dead_letter,
}
names = st.from_regex(NAME_PATTERN, fullmatch=True)
ids = st.text(min_size=1, max_size=40)
int64 = st.integers(-(2**63), 2**63 - 1)


def only_decode_errors(data: object) -> dict[str, object]:
    """Run every decoder; each returns a message or raises DecodeError. Returns what decoded."""
    decoded = {}
    for name, decode in DECODERS.items():
        try:
            decoded[name] = decode(data)  # type: ignore[operator]
        except DecodeError as exc:
            assert isinstance(exc.reason, Reason) and exc.message
            assert exc.request_id is None or isinstance(exc.request_id, str)
    peeked = CODEC.peek_request_id(data)  # type: ignore[arg-type]
    assert peeked is None or isinstance(peeked, str)
    return decoded


@st.composite
def arrays(draw: st.DrawFn, dtype: str, rows: int) -> np.ndarray:
    shape = (rows, *draw(st.lists(st.integers(0, 3), max_size=3)))
    wire = DTYPES[dtype]
    if dtype == "bool":
        return np.asarray(draw(st.lists(st.booleans(), min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))),
                          dtype=bool).reshape(shape)
    raw = draw(st.binary(min_size=int(np.prod(shape)) * wire.itemsize, max_size=int(np.prod(shape)) * wire.itemsize))
    return np.frombuffer(raw, dtype=wire).reshape(shape)


@st.composite
def valid_requests(draw: st.DrawFn, dtype: str | None = None) -> InferenceRequest:
    rows = draw(st.integers(1, 4))
    inputs = draw(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=3, unique=True))
    tensors = tuple(
        Tensor.from_numpy(name, draw(arrays(dtype or draw(st.sampled_from(list(DTYPES))), rows))) for name in inputs
    )
    return InferenceRequest(
        request_id=draw(ids), model=draw(names), inputs=tensors, created_at_ms=draw(int64),
        version=draw(st.none() | names), deadline_ms=draw(st.none() | int64),
        priority=draw(st.integers(-(2**31), 2**31 - 1)),
    )


@pytest.mark.parametrize("dtype", list(DTYPES))
@settings(max_examples=40)
@given(data=st.data())
def test_requests_of_each_dtype_round_trip_to_the_same_arrays(dtype: str, data: st.DataObject) -> None:
    request = data.draw(valid_requests(dtype))
    decoded = CODEC.decode_request(CODEC.encode_request(request))
    assert decoded == request
    for sent, got in zip(request.inputs, decoded.inputs, strict=True):
        assert got.dtype == dtype
        np.testing.assert_array_equal(got.to_numpy(), sent.to_numpy())  # NaN bits compare equal as bytes below
        assert got.to_numpy().tobytes() == sent.to_numpy().tobytes()


@given(valid_requests())
def test_payload_limit_holds_at_its_boundary(request: InferenceRequest) -> None:
    data = CODEC.encode_request(request)
    assert CODEC.decode_request(data, len(data)) == request
    with pytest.raises(DecodeError) as caught:
        CODEC.decode_request(data, len(data) - 1)
    assert (caught.value.reason, caught.value.request_id) == (Reason.OVERSIZED, request.request_id)


@given(valid_requests(), st.binary(min_size=1, max_size=64))
def test_trailing_bytes_are_undecodable_and_keep_the_id(request: InferenceRequest, tail: bytes) -> None:
    with pytest.raises(DecodeError) as caught:
        CODEC.decode_request(CODEC.encode_request(request) + tail)
    assert caught.value.reason is Reason.UNDECODABLE
    assert caught.value.request_id == request.request_id


@given(valid_requests())
def test_each_decoder_refuses_the_others_records_as_wrong_schema(request: InferenceRequest) -> None:
    result = InferenceResult(request.request_id, request.model, Status.OK, 1)
    dead = DeadLetter(CODEC.encode_request(request), "t", 0, 1, Reason.UNDECODABLE, "m", 1, request.request_id)
    encoded = {
        "request": CODEC.encode_request(request),
        "result": CODEC.encode_result(result),
        "dead_letter": CODEC.encode_dead_letter(dead),
    }
    for kind, data in encoded.items():
        for name, decode in DECODERS.items():
            if name == kind:
                decode(data)
                continue
            with pytest.raises(DecodeError) as caught:
                decode(data)
            assert caught.value.reason is Reason.WRONG_SCHEMA
            assert kind.replace("_", "") in caught.value.message.lower().replace(" ", "")


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(valid_requests(), valid_requests(), st.data())
def test_splices_of_two_encodings_only_ever_raise_decode_error(a: InferenceRequest, b: InferenceRequest,
                                                               data: st.DataObject) -> None:
    first, second = CODEC.encode_request(a), CODEC.encode_request(b)
    i = data.draw(st.integers(0, len(first)))
    j = data.draw(st.integers(0, len(second)))
    only_decode_errors(first[:i] + second[j:])
    only_decode_errors(first + first)  # two records back to back in one value
    header = data.draw(st.sampled_from(HEADERS))
    only_decode_errors(b"\xc3\x01" + header + first[HEADER_SIZE:])  # body under another schema's header


@given(st.binary(max_size=300))
def test_any_bytes_behind_each_header_only_raise_decode_error(body: bytes) -> None:
    for header in HEADERS:
        only_decode_errors(b"\xc3\x01" + header + body)


@given(st.binary(max_size=300).map(bytearray) | st.binary(max_size=300).map(memoryview))
def test_bytearray_and_memoryview_values_behave_like_bytes(data: bytearray | memoryview) -> None:
    assert only_decode_errors(data).keys() == only_decode_errors(bytes(data)).keys()


@pytest.mark.parametrize("value", [None, "text", 7, 1.5, ["list"], {"a": 1}, object()])
def test_values_that_are_not_bytes_are_undecodable(value: object) -> None:
    for decode in DECODERS.values():
        with pytest.raises(DecodeError) as caught:
            decode(value)  # type: ignore[operator]
        assert caught.value.reason is Reason.UNDECODABLE
    assert CODEC.peek_request_id(value) is None  # type: ignore[arg-type]


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(valid_requests(), st.data())
def test_peek_agrees_with_the_decoder(request: InferenceRequest, data: st.DataObject) -> None:
    encoded = bytearray(CODEC.encode_request(request))
    for _ in range(data.draw(st.integers(0, 3))):
        encoded[data.draw(st.integers(0, len(encoded) - 1))] = data.draw(st.integers(0, 255))
    value = bytes(encoded)
    peeked = CODEC.peek_request_id(value)
    try:
        decoded = CODEC.decode_request(value)
    except DecodeError as exc:
        # Whatever id an error carries is the one peek reads (or none at all).
        assert exc.request_id in (None, peeked)
        if exc.reason is Reason.UNDECODABLE:
            assert exc.request_id == peeked
    else:
        assert decoded.request_id == peeked


# -- issue 8: what the router reads agrees with what the decoder accepts ---------------------------

hostile_text = st.one_of(
    st.text(max_size=70),  # any code point but surrogates: control, NUL, non-ASCII
    st.integers(MAX_REQUEST_ID_BYTES - 2, MAX_REQUEST_ID_BYTES + 2).map(lambda n: "é" * (n // 2) + "x" * (n % 2)),
    st.sampled_from(["", ".", "..", "-a", "a/b", "m" * 64, "m" * 65]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_requests(), hostile_text, hostile_text, st.none() | hostile_text)
def test_route_is_read_only_from_requests_whose_id_and_model_can_be_answered(
    request: InferenceRequest, request_id: str, model: str, version: str | None
) -> None:
    value = CODEC.encode_request(
        InferenceRequest(request_id, model, request.inputs, request.created_at_ms, version, request.deadline_ms)
    )
    route = CODEC.peek_route(value)
    id_ok = 0 < len(request_id.encode()) <= MAX_REQUEST_ID_BYTES
    assert route == ((request_id, model) if id_ok and NAME_PATTERN.fullmatch(model) else None)
    assert CODEC.peek_request_id(value) == (request_id if id_ok else None)
    try:
        decoded = CODEC.decode_request(value)
    except DecodeError as exc:
        assert exc.reason is Reason.INVALID_INPUT
        assert exc.request_id == (request_id if id_ok else None)  # an error result exactly when readable
        assert len(exc.message) < 600
    else:
        assert route == (decoded.request_id, decoded.model)
