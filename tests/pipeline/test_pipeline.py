"""The job's pipeline on an in-process MiniCluster: an in-memory source instead of Kafka.

``build_pipeline`` is a function of its source, so the whole graph (decode and validate,
key by model and lane, BatchInfer with its state and timers, error side outputs) runs here on
bounded input, in BATCH runtime mode: there every pending processing-time timer fires when
the input ends, so partly filled batches are flushed as they are by the timer in streaming.
The job runs once per module; the tests read its output.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
import pytest

from aimass.contract.codec import Codec
from aimass.contract.messages import DeadLetter, InferenceRequest, InferenceResult, Reason, Status
from aimass.settings import Settings
from aimass.tools.traffic import make_request, now_ms
from tests.pipeline.minicluster import READY, control_rows, minicluster_configuration

pytestmark = pytest.mark.pipeline


@dataclass
class Run:
    good: list[tuple[InferenceRequest, str]]
    """Well-formed requests and the version expected to serve each."""
    typed: dict[str, Status]
    """Requests that must get a typed error result, by id."""
    garbage: list[bytes]
    duplicate: InferenceRequest
    results: list[InferenceResult]
    dead: list[DeadLetter]


@pytest.fixture(scope="module")
def run() -> Run:
    from pyflink.common import Row
    from pyflink.common.typeinfo import Types
    from pyflink.datastream import RuntimeExecutionMode, StreamExecutionEnvironment

    from aimass.tools.demo import build_demo_models, load_holdout
    from flink_jobs.inference_job import CONTROL_ROW, SOURCE_ROW, build_pipeline

    settings = Settings.load(env={}, overrides={"job.parallelism": "2"})
    build_demo_models(settings.paths.models_dir)
    codec = Codec(settings.paths.schemas_dir)
    images, _ = load_holdout(settings.paths.models_dir)
    rng = np.random.default_rng(3)

    good = [(make_request("digits", {"pixels": images[i : i + 1]}), "2") for i in range(70)]
    good += [(make_request("digits", {"pixels": images[i : i + 3]}, version="1"), "1") for i in range(0, 60, 3)]
    good += [(make_request("heavy", {"x": rng.standard_normal((2, 784)).astype(np.float32)}), "1") for _ in range(5)]
    typed_requests = {
        Status.UNKNOWN_MODEL: make_request("nope", {"pixels": images[:1]}),
        Status.INVALID_INPUT: make_request("digits", {"pixels": images[:1, :60]}),
        Status.DEADLINE_EXCEEDED: make_request("digits", {"pixels": images[:1]}, deadline_ms=now_ms() - 1),
    }
    unknown_version = make_request("digits", {"pixels": images[:1]}, version="9")
    garbage = [b"", b"\xc3\x01" + bytes(20), b"plain text, not avro"]
    duplicate = make_request("digits", {"pixels": images[:1]})
    # The same id under another model: de-duplication is keyed by id, not by model lane.
    cross_model = make_request("heavy", {"x": rng.standard_normal((1, 784)).astype(np.float32)},
                               request_id=duplicate.request_id)
    values = [codec.encode_request(r) for r, _ in good]
    values += [codec.encode_request(r) for r in [*typed_requests.values(), unknown_version]]
    values += garbage + [codec.encode_request(duplicate)] * 3 + [codec.encode_request(cross_model)]
    rows = [Row(v, "requests", 0, offset, now_ms()) for offset, v in enumerate(values)]

    config = minicluster_configuration(settings)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    # Streaming, as the job runs: batch mode sorts keyed inputs, which would reorder the route
    # updates Route sends each lane ahead of the requests they route.
    env.set_runtime_mode(RuntimeExecutionMode.STREAMING)
    source = env.from_collection(rows, type_info=SOURCE_ROW)
    control = env.from_collection(control_rows(settings), type_info=CONTROL_ROW)
    results, dead_letters, _, _ = build_pipeline(source, control, settings, READY)
    tagged = Types.TUPLE([Types.STRING(), Types.PRIMITIVE_ARRAY(Types.BYTE())])
    out = results.map(lambda r: ("result", r[1]), output_type=tagged).union(
        dead_letters.map(lambda r: ("dead", r[0]), output_type=tagged)
    )
    collected = list(out.execute_and_collect())
    typed = {r.request_id: status for status, r in typed_requests.items()}
    typed[unknown_version.request_id] = Status.UNKNOWN_MODEL
    return Run(
        good=good,
        typed=typed,
        garbage=garbage,
        duplicate=duplicate,
        results=[codec.decode_result(_bytes(v)) for tag, v in collected if tag == "result"],
        dead=[codec.decode_dead_letter(_bytes(v)) for tag, v in collected if tag == "dead"],
    )


def _bytes(value: object) -> bytes:
    """A Java byte[] as collected (bytes, or a list of signed ints) as Python bytes."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return np.asarray(value, dtype=np.int8).tobytes()


def test_every_good_request_gets_one_result_equal_to_a_direct_onnx_runtime_run(run: Run) -> None:
    by_id = {r.request_id: r for r in run.results}
    counts = Counter(r.request_id for r in run.results)
    sessions: dict[tuple[str, str], ort.InferenceSession] = {}
    models_dir = Settings.load(env={}).paths.models_dir
    for request, version in run.good:
        assert counts[request.request_id] == 1
        result = by_id[request.request_id]
        assert result.status is Status.OK, result.error
        assert result.version == version
        key = (request.model, version)
        if key not in sessions:
            sessions[key] = ort.InferenceSession(str(models_dir / request.model / version / "model.onnx"))
        expected = sessions[key].run(None, {t.name: t.to_numpy() for t in request.inputs})
        for output, value in zip(sessions[key].get_outputs(), expected, strict=True):
            np.testing.assert_allclose(result.output(output.name), value, rtol=1e-5, atol=1e-6)


def test_batches_fill_up_to_the_model_limit(run: Run) -> None:
    sizes = [r.timings.batch_size for r in run.results if r.status is Status.OK]
    assert max(sizes) <= 32
    assert max(sizes) > 1, "requests of one key were never batched together"


def test_bad_records_get_typed_errors_and_dead_letters(run: Run) -> None:
    by_id = {r.request_id: r for r in run.results}
    for request_id, status in run.typed.items():
        assert by_id[request_id].status is status
        assert by_id[request_id].error
    dead_originals = [d.original for d in run.dead]
    for raw in run.garbage:
        assert raw in dead_originals
    reasons = Counter(d.reason for d in run.dead)
    assert reasons[Reason.UNDECODABLE] + reasons[Reason.WRONG_SCHEMA] >= len(run.garbage)
    assert reasons[Reason.UNKNOWN_MODEL] == 2
    assert len(run.dead) == len(run.garbage) + len(run.typed)
    assert all(d.topic == "requests" and d.offset >= 0 for d in run.dead)


def test_a_resubmitted_request_id_yields_one_result_whatever_its_model(run: Run) -> None:
    (result,) = [r for r in run.results if r.request_id == run.duplicate.request_id]
    assert result.status is Status.OK
