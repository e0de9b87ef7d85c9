"""Errors as data: error results and dead letters, and every output fitting its topic."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from aimass.contract.codec import Codec
from aimass.contract.limits import MAX_ERROR_CHARS, MAX_REQUEST_ID_BYTES, RECORD_OVERHEAD_BYTES
from aimass.contract.messages import InferenceRequest, InferenceResult, Reason, Status, Tensor, Timings
from aimass.serving.engine import InferenceEngine
from aimass.serving.models import ModelRepository
from aimass.serving.rejects import Source, deliverable, reject
from aimass.serving.sessions import SessionCache
from aimass.settings import EngineSettings, JobSettings
from tests.onnx_models import tile_meta, tile_onnx, write_model

CODEC = Codec()
SOURCE = Source("aimass.requests", 3, 42)
NOW = 1_700_000_000_000


def test_reject_builds_an_error_result_and_a_dead_letter() -> None:
    rejection = reject(CODEC, b"raw", SOURCE, Reason.UNKNOWN_MODEL, "no such model", NOW, "r-1", model="nope",
                       created_at_ms=NOW - 5)
    result = CODEC.decode_result(rejection.result or b"")
    assert rejection.result_key == "r-1"
    assert (result.status, result.error, result.timings.end_to_end_ms) == (
        Status.UNKNOWN_MODEL, "UNKNOWN_MODEL: no such model", 5.0)
    dead = CODEC.decode_dead_letter(rejection.dead_letter)
    assert (dead.original, dead.topic, dead.partition, dead.offset, dead.reason, dead.request_id) == (
        b"raw", "aimass.requests", 3, 42, Reason.UNKNOWN_MODEL, "r-1")


def test_reject_without_an_id_is_a_dead_letter_only() -> None:
    rejection = reject(CODEC, b"", SOURCE, Reason.UNDECODABLE, "empty", NOW)
    assert rejection.result is None and rejection.result_key is None
    assert CODEC.decode_dead_letter(rejection.dead_letter).original == b""


def test_messages_are_clipped_in_results_and_dead_letters() -> None:
    rejection = reject(CODEC, b"x", SOURCE, Reason.UNDECODABLE, "m" * 5_000_000, NOW, "r")
    dead = CODEC.decode_dead_letter(rejection.dead_letter)
    result = CODEC.decode_result(rejection.result or b"")
    assert len(dead.message) == MAX_ERROR_CHARS and dead.message.endswith("...")
    assert len(result.error or "") <= MAX_ERROR_CHARS + 20
    assert len(rejection.dead_letter) < 2 * MAX_ERROR_CHARS


def test_a_dead_letter_too_large_for_its_topic_keeps_the_head_and_digest_of_the_original() -> None:
    original = bytes(range(256)) * 400  # 100 KiB
    limit = 50 * 1024
    rejection = reject(CODEC, original, SOURCE, Reason.OVERSIZED, "too big", NOW, "r", limit=limit)
    assert len(rejection.dead_letter) + RECORD_OVERHEAD_BYTES <= limit
    dead = CODEC.decode_dead_letter(rejection.dead_letter)
    assert original.startswith(dead.original) and len(dead.original) > limit // 2
    assert hashlib.sha256(original).hexdigest() in dead.message
    # Under the limit, the original travels whole.
    whole = reject(CODEC, original, SOURCE, Reason.OVERSIZED, "too big", NOW, "r", limit=len(original) + 4096)
    assert CODEC.decode_dead_letter(whole.dead_letter).original == original


def test_a_record_far_over_the_limit_is_cut_before_its_dead_letter_is_built() -> None:
    """A compressed batch carries records far past the broker's record limit: 64 MiB of zeros here."""
    import tracemalloc

    original = bytes(64 * 1024 * 1024)
    limit = 300 * 1024
    tracemalloc.start()
    try:
        rejection = reject(CODEC, original, SOURCE, Reason.OVERSIZED, "too big", NOW, "r", limit=limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(rejection.dead_letter) + RECORD_OVERHEAD_BYTES <= limit
    assert peak < 8 * limit  # the cut and its envelope, not a copy of the original
    # Exactly at the limit: one byte more than fits is cut, what fits travels whole.
    envelope = len(reject(CODEC, b"", SOURCE, Reason.OVERSIZED, "too big", NOW, "r").dead_letter)
    fits = limit - RECORD_OVERHEAD_BYTES - envelope - 10
    assert CODEC.decode_dead_letter(reject(CODEC, original[:fits], SOURCE, Reason.OVERSIZED, "too big", NOW, "r",
                                           limit=limit).dead_letter).original == original[:fits]


def ok_result(request_id: str, nbytes: int) -> InferenceResult:
    out = Tensor("y", "uint8", (1, nbytes), bytes(nbytes))
    return InferenceResult(request_id, "m", Status.OK, NOW, "1", (out,), None, Timings(1.0, 1, 2.0, 3.0))


def test_a_result_that_fits_is_delivered_as_it_is() -> None:
    result = ok_result("r", 1000)
    same, encoded = deliverable(CODEC, result, 10_000)
    assert same is result and encoded == CODEC.encode_result(result)


@pytest.mark.parametrize("request_id", ["r", "k" * MAX_REQUEST_ID_BYTES])
def test_a_result_larger_than_its_topic_takes_becomes_a_small_error_result(request_id: str) -> None:
    limit = 64 * 1024
    fits = limit - RECORD_OVERHEAD_BYTES - 2 * len(request_id) - 200  # the id is key and field; envelope < 200
    assert deliverable(CODEC, ok_result(request_id, fits), limit)[0].status is Status.OK
    big = ok_result(request_id, limit)
    small, encoded = deliverable(CODEC, big, limit)
    assert small.status is Status.INVALID_INPUT and small.outputs == ()
    assert (small.request_id, small.model, small.version, small.timings) == (request_id, "m", "1", big.timings)
    assert "more than the results topic takes" in (small.error or "") and "fewer rows" in (small.error or "")
    assert CODEC.decode_result(encoded) == small
    assert len(encoded) + len(request_id) + RECORD_OVERHEAD_BYTES <= limit


def test_a_result_that_cannot_be_encoded_becomes_an_internal_error() -> None:
    broken = InferenceResult("r", "m", Status.OK, NOW, "1", (), None, Timings(batch_size=2**40))
    small, encoded = deliverable(CODEC, broken, 1 << 20)
    assert small.status is Status.INTERNAL_ERROR and "cannot be encoded" in (small.error or "")
    assert CODEC.decode_result(encoded).status is Status.INTERNAL_ERROR


def test_a_model_whose_output_outgrows_the_topic_answers_with_an_error_not_a_failed_sink(tmp_path: Path) -> None:
    settings = JobSettings(max_payload_bytes=4096)  # output_record_limit: 4 KiB + 128 KiB
    width = 40_000  # 160 KB of output per row, from 4 bytes of input
    write_model(tmp_path, "tile", "1", tile_onnx(width), tile_meta(width))
    engine = InferenceEngine(ModelRepository(tmp_path), SessionCache(EngineSettings(use_gpu=False)), settings)
    requests = [InferenceRequest(f"r{i}", "tile", (Tensor.from_numpy("x", np.ones((1, 1), np.float32)),), NOW)
                for i in range(2)]
    for result in engine.run(requests, [NOW, NOW], NOW):
        assert result.status is Status.OK and result.output("y").shape == (1, width)
        small, encoded = deliverable(CODEC, result, settings.output_record_limit)
        assert small.status is Status.INVALID_INPUT and small.request_id == result.request_id
        assert len(encoded) < 2048
