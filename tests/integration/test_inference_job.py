"""The inference job on the real stack: results for good requests, errors for bad ones."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from aimass.contract.codec import Codec
from aimass.contract.messages import Reason, Status
from aimass.operators import BATCH_INFER
from aimass.settings import Settings
from aimass.stack.flink import FlinkCluster
from aimass.tools.traffic import (
    collect,
    collect_results,
    consumer,
    make_request,
    now_ms,
    producer,
    send,
    send_requests,
)

pytestmark = pytest.mark.integration


def _restarts(settings: Settings, job_id: str) -> int:
    metrics = FlinkCluster(settings).rest(f"/jobs/{job_id}/metrics?get=numRestarts")
    return int(float(metrics[0]["value"])) if metrics else 0


def test_job_is_running_in_the_web_ui(test_settings: Settings, inference_job: str) -> None:
    detail = FlinkCluster(test_settings).rest(f"/jobs/{inference_job}")
    assert detail["state"] == "RUNNING"
    names = {v["name"] for v in detail["vertices"]}
    assert any(BATCH_INFER.name in name for name in names), names


def _mixed_inputs(rng: np.random.Generator, rows: int) -> dict[str, np.ndarray]:
    return {
        "f64": rng.standard_normal((rows, 3)),
        "i64": rng.integers(-(2**40), 2**40, (rows, 3), dtype=np.int64),
        "i32": rng.integers(-1000, 1000, (rows, 3), dtype=np.int32),
        "u8": rng.integers(0, 256, (rows, 3), dtype=np.uint8),
        "flag": rng.random((rows, 3)) > 0.5,
    }


def test_every_model_and_version_matches_a_direct_onnx_runtime_run(
    test_settings: Settings, inference_job: str, codec: Codec
) -> None:
    from aimass.tools.demo import load_holdout

    models_dir = test_settings.paths.models_dir
    images, labels = load_holdout(models_dir)
    rng = np.random.default_rng(7)
    n = 150
    # (request, version expected to serve it): unpinned digits go to the newest version.
    cases = [(make_request("digits", {"pixels": images[i : i + 1]}), "2") for i in range(n)]
    cases += [(make_request("digits", {"pixels": images[i : i + 1]}, version="1"), "1") for i in range(n)]
    cases += [(make_request("digits", {"pixels": images[:5]}, version="2"), "2"),
              (make_request("digits", {"pixels": images[5:12]}, version="1"), "1")]
    cases += [(make_request("heavy", {"x": rng.standard_normal((1 + i % 3, 784)).astype(np.float32)}), "1")
              for i in range(20)]
    cases += [(make_request("mixed", _mixed_inputs(rng, 1 + i % 2), version="1"), "1") for i in range(20)]
    requests = [request for request, _ in cases]
    cons = consumer(test_settings.kafka.bootstrap, test_settings.kafka.results_topic, from_beginning=False)
    prod = producer(test_settings.kafka.bootstrap)
    rng.shuffle(requests)  # interleave models and versions on the topic
    send_requests(prod, codec, test_settings.kafka.requests_topic, requests)
    results = collect_results(cons, codec, {r.request_id for r in requests}, timeout_s=120)
    cons.close()
    prod.close()

    assert len(results) == len(requests)
    sessions: dict[tuple[str, str], ort.InferenceSession] = {}
    for request, version in cases:
        result = results[request.request_id]
        assert result.status is Status.OK, result.error
        assert (result.model, result.version) == (request.model, version)
        session = sessions.get((request.model, version))
        if session is None:
            path = models_dir / request.model / version / "model.onnx"
            session = sessions[(request.model, version)] = ort.InferenceSession(str(path))
        feeds = {t.name: t.to_numpy() for t in request.inputs}
        expected = session.run(None, feeds)
        for output, value in zip(session.get_outputs(), expected, strict=True):
            got = result.output(output.name)
            assert got.dtype == value.dtype and got.shape == value.shape
            np.testing.assert_allclose(got, value, rtol=1e-5, atol=1e-6)
        assert 1 <= result.timings.batch_size <= 32
        assert result.timings.end_to_end_ms >= result.timings.inference_ms >= 0
    for version in ("1", "2"):
        served = [results[r.request_id] for r, v in cases[: 2 * n] if v == version]
        accuracy = np.mean([int(res.output("label")[0]) == labels[i % n] for i, res in enumerate(served)])
        assert accuracy > 0.9, (version, accuracy)


def test_malformed_records_get_error_results_and_dead_letters_without_restart(
    test_settings: Settings, inference_job: str, codec: Codec
) -> None:
    restarts_before = _restarts(test_settings, inference_job)
    k = test_settings.kafka
    good = make_request("digits", {"pixels": np.zeros((1, 64), np.float32)})
    unknown = make_request("no-such-model", {"pixels": np.zeros((1, 64), np.float32)})
    bad_shape = make_request("digits", {"pixels": np.zeros((1, 63), np.float32)})
    bad_dtype = make_request("digits", {"pixels": np.zeros((1, 64), np.float64)})
    expired = make_request("digits", {"pixels": np.zeros((1, 64), np.float32)}, deadline_ms=now_ms() - 1000)
    garbage = b"\x00\x01not avro at all" + bytes(range(40))
    cut = make_request("digits", {"pixels": np.zeros((1, 64), np.float32)})
    truncated = codec.encode_request(cut)[:-7]
    # Oversized records are refused by the codec (tests/unit/contract/test_codec.py); a 4 MiB record
    # through the running job is not covered here yet (see the issue note).

    dead_cons = consumer(k.bootstrap, k.dead_letter_topic, from_beginning=False)
    cons = consumer(k.bootstrap, k.results_topic, from_beginning=False)
    prod = producer(k.bootstrap)
    typed = [unknown, bad_shape, bad_dtype, expired]
    send_requests(prod, codec, k.requests_topic, [good, *typed])
    send(prod, k.requests_topic, [garbage, truncated])
    results = collect_results(cons, codec, {r.request_id for r in [good, cut, *typed]}, timeout_s=90)
    dead = collect(dead_cons, codec.decode_dead_letter, lambda got: len(got) >= 6, timeout_s=60)
    prod.close()
    cons.close()
    dead_cons.close()

    assert results[good.request_id].status is Status.OK
    assert results[unknown.request_id].status is Status.UNKNOWN_MODEL
    assert results[bad_shape.request_id].status is Status.INVALID_INPUT
    assert results[bad_dtype.request_id].status is Status.INVALID_INPUT
    assert results[expired.request_id].status is Status.DEADLINE_EXCEEDED
    # A truncated record whose request id is still readable gets a typed error result too.
    assert results[cut.request_id].status is Status.INVALID_INPUT
    assert all(results[r.request_id].error for r in typed)

    reasons = {d.reason for d in dead}
    assert {Reason.UNKNOWN_MODEL, Reason.INVALID_INPUT, Reason.DEADLINE_EXCEEDED, Reason.UNDECODABLE} <= reasons
    originals = {d.original for d in dead}
    assert garbage in originals and truncated in originals
    assert all(d.topic == k.requests_topic and d.offset >= 0 for d in dead)
    assert _restarts(test_settings, inference_job) == restarts_before


def test_resubmitted_request_id_yields_one_result(
    test_settings: Settings, inference_job: str, codec: Codec
) -> None:
    k = test_settings.kafka
    request = make_request("digits", {"pixels": np.ones((1, 64), np.float32) * 0.5})
    marker = make_request("digits", {"pixels": np.zeros((1, 64), np.float32)})
    cons = consumer(k.bootstrap, k.results_topic, from_beginning=False)
    prod = producer(k.bootstrap)
    send_requests(prod, codec, k.requests_topic, [request, request, request])
    send_requests(prod, codec, k.requests_topic, [marker])
    seen = collect(cons, codec.decode_result,
                   lambda got: sum(r.request_id == request.request_id for r in got) >= 1
                   and any(r.request_id == marker.request_id for r in got), timeout_s=60)
    # Read a little longer: a duplicate would arrive with the same or the next checkpoint.
    linger_s = 3 * test_settings.job.checkpoint_interval_ms / 1000
    seen += collect(cons, codec.decode_result, lambda got: False, timeout_s=linger_s)
    prod.close()
    cons.close()
    assert sum(r.request_id == request.request_id for r in seen) == 1
