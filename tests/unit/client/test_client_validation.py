"""Requests are refused with a typed InvalidRequest before anything reaches Kafka."""

from __future__ import annotations

import time

import numpy as np
import pytest

from aimass.client import Client, InvalidRequest, PayloadTooLarge, Unavailable, validation
from aimass.contract.messages import Status, Tensor
from aimass.settings import Settings


@pytest.fixture
def client(offline_settings: Settings) -> Client:
    return Client(offline_settings, read_results=False)


def good() -> dict[str, np.ndarray]:
    return {"pixels": np.zeros((2, 64), np.float32)}


def test_a_good_request_is_encoded_with_a_fresh_id(client: Client) -> None:
    request, data = client.prepare("digits", validation.tensors_from_numpy(good()))
    assert request.rows == 2 and len(request.request_id) == 36
    assert client.codec.decode_request(data) == request


@pytest.mark.parametrize(
    ("model", "inputs", "status", "message"),
    [
        ("../etc", good(), Status.INVALID_INPUT, "model name '../etc' must match"),
        ("digits", {"pixels": np.zeros((1, 63), np.float32)}, Status.INVALID_INPUT, r"shape \[1, 63\]"),
        ("digits", {"pixels": np.zeros((1, 64), np.float64)}, Status.INVALID_INPUT, "must be float32, got float64"),
        ("digits", {"pixels": np.zeros(64, np.float32)}, Status.INVALID_INPUT, r"must have rank 2 \(shape \[N, 64\]\)"),
        ("digits", {"image": np.zeros((1, 64), np.float32)}, Status.INVALID_INPUT, r"missing \['pixels'\]"),
        ("digits", {**good(), "extra": np.zeros((2, 1), np.float32)}, Status.INVALID_INPUT, "unexpected"),
        ("digits", {"pixels": np.zeros((1, 64), np.complex64)}, Status.INVALID_INPUT, "unsupported dtype"),
        ("digits", {"pixels": [[0.0] * 64]}, Status.INVALID_INPUT, "not a numpy array"),
        ("digits", {}, Status.INVALID_INPUT, "no inputs"),
    ],
)
def test_bad_requests_are_refused_before_kafka(client: Client, model: str, inputs: dict[str, object],
                                               status: Status, message: str) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidRequest, match=message) as caught:
        client.submit(model, inputs)  # type: ignore[arg-type]
    assert caught.value.status is status
    assert client._producer is None  # nothing was even connected
    assert time.monotonic() - started < 0.5


def test_a_model_or_version_the_local_folder_lacks_is_left_to_the_job(client: Client) -> None:
    # Deployed through the control topic, or an alias: only the job's routing knows.
    for model, version in (("no-such-model", None), ("digits", "canary")):
        request, _ = client.prepare(model, validation.tensors_from_numpy(good()), version)
        assert (request.model, request.version) == (model, version)


def test_rows_must_agree_across_inputs() -> None:
    tensors = (Tensor.from_numpy("a", np.zeros((2, 3), np.float32)),
               Tensor.from_numpy("b", np.zeros((3, 3), np.float32)))
    with pytest.raises(InvalidRequest, match="differ in first dimension"):
        validation.check_tensors(tensors)


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (Tensor("x", "float32", (2, 2), b"\x00" * 15), "needs 16 bytes, got 15"),
        (Tensor("x", "float16", (1,), b"\x00\x00"), "dtype 'float16' is not one of"),
        (Tensor("x", "float32", (-1, 2), b""), "negative dimension"),
        (Tensor("x", "bool", (2,), b"\x00\x02"), "bytes 0 or 1"),
        (Tensor("", "float32", (1,), b"\x00" * 4), "empty name"),
    ],
)
def test_malformed_wire_tensors_are_refused(tensor: Tensor, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        validation.check_tensors([tensor])


def test_duplicate_wire_input_names_are_refused() -> None:
    t = Tensor.from_numpy("x", np.zeros((1, 2), np.float32))
    with pytest.raises(InvalidRequest, match="duplicate input name"):
        validation.check_tensors([t, t])


def test_payload_over_the_limit_is_refused(client: Client) -> None:
    big = {"pixels": np.zeros((300, 64), np.float32)}  # 76.8 kB > the 64 KiB limit of these settings
    with pytest.raises(PayloadTooLarge, match="exceeds the limit of 65536 bytes"):
        client.submit("digits", big)
    assert client._producer is None


def test_without_a_repository_only_structure_is_checked(offline_settings: Settings) -> None:
    client = Client(offline_settings, validate=False, read_results=False)
    request, _ = client.prepare("any-model", validation.tensors_from_numpy({"x": np.ones((1, 3), np.int64)}))
    assert request.model == "any-model"


def test_no_broker_gives_unavailable_within_the_bounded_time(client: Client) -> None:
    started = time.monotonic()
    with pytest.raises(Unavailable, match="cannot reach Kafka"):
        client.submit("digits", good())
    assert time.monotonic() - started < 5


def test_request_ids_the_job_would_not_answer_are_refused(client: Client) -> None:
    with pytest.raises(InvalidRequest, match="request_id of 1025 bytes exceeds 1024 bytes"):
        client.submit("digits", good(), request_id="x" * 1025)
    with pytest.raises(InvalidRequest, match="must not be empty"):
        client.submit("digits", good(), request_id="")
    assert client._producer is None
    request, _ = client.prepare("digits", validation.tensors_from_numpy(good()), request_id="é" * 512)
    assert len(request.request_id.encode()) == 1024
