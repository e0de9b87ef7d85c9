"""Bad input through the whole job graph: every bad-record kind, and what no kind can carry.

One MiniCluster run (BATCH mode, as in test_pipeline.py) of valid requests mixed with:

* records of every kind in :data:`aimass.faults.malformed.KINDS`, each owed exactly one dead
  letter with its kind's reason and, when its id is readable, exactly one result with its
  kind's status;
* seeded mutations of valid requests (:class:`aimass.faults.fuzz.Mutator`), each owed exactly
  one result for its id, of any status, and a dead letter of the same status exactly when that
  status is not ok;
* a NULL value (a Kafka tombstone) and an empty one: one ``UNDECODABLE`` dead letter each;
* a request that passes validation but makes ONNX Runtime fail, batched with requests that do
  not: ``INTERNAL_ERROR`` for it alone;
* valid requests whose results are larger than the results topic takes (a demo ``mixed``
  request near the payload limit, and a model whose output dwarfs its input): a small
  ``INVALID_INPUT`` result each instead of a record the sink cannot write.

The valid requests (NaN and infinities, more rows than ``max_batch_size``, ids with control
and non-ASCII characters, far deadlines, extreme integers, ...) must get OK results equal to a
direct ONNX Runtime run. Nothing may fail the job: ``execute_and_collect`` would raise.
"""

from __future__ import annotations

import random
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from aimass.contract.codec import Codec
from aimass.contract.keys import lane_key
from aimass.contract.limits import MAX_REQUEST_ID_BYTES
from aimass.contract.messages import DeadLetter, InferenceRequest, InferenceResult, Reason, Status
from aimass.faults.fuzz import Mutator
from aimass.faults.malformed import KINDS, BadRecord, BadRecords
from aimass.faults.oracle import digest
from aimass.settings import Settings
from aimass.tools.traffic import make_request, now_ms
from tests.onnx_models import LOOKUP_META, lookup_onnx, tile_meta, tile_onnx, write_model
from tests.pipeline.minicluster import READY, control_rows, minicluster_configuration

pytestmark = pytest.mark.pipeline

MAX_PAYLOAD = 2 * 1024 * 1024
"""The job's payload limit here: the results topic takes 2 MiB + 128 KiB, which a ``mixed``
request near the payload limit outgrows (its outputs are 74 bytes a row for 66 in)."""
TILE_WIDTH = 600_000
"""Floats out per float in of the ``tile`` model: 2.4 MB per row."""


@dataclass
class Run:
    models: Path
    good: list[InferenceRequest]
    bad: list[BadRecord]
    fuzzed: list[BadRecord]
    owed: dict[str, tuple[Status, Reason]]
    """Requests outside the kinds that owe a typed error (and a dead letter), by id."""
    nameless: list[bytes]
    """Values owed an UNDECODABLE dead letter and no result (NULL stands as b"")."""
    results: list[tuple[str, InferenceResult]]
    """(Kafka key, result) for every result."""
    dead: list[DeadLetter]


def _test_models(root: Path) -> None:
    """``lookup`` (Gather from 4 values: an index past 3 fails the call) and ``tile``."""
    write_model(root, "lookup", "1", lookup_onnx(), LOOKUP_META)
    write_model(root, "tile", "1", tile_onnx(TILE_WIDTH), tile_meta(TILE_WIDTH))


def _mixed(rows: int, rng: np.random.Generator, rid: str | None = None) -> InferenceRequest:
    i64 = np.iinfo(np.int64)
    i32 = np.iinfo(np.int32)
    arrays = {
        "f64": rng.standard_normal((rows, 3)),
        "i64": rng.choice(np.array([i64.min, i64.max, 0, -1, 1], np.int64), (rows, 3)),
        "i32": rng.choice(np.array([i32.min, i32.max, 0, -1], np.int32), (rows, 3)),
        "u8": rng.integers(0, 256, (rows, 3), dtype=np.uint8),
        "flag": rng.integers(0, 2, (rows, 3)).astype(bool),
    }
    arrays["f64"][0] = [np.nan, np.inf, -np.inf]
    request = make_request("mixed", arrays)
    return request if rid is None else InferenceRequest(rid, "mixed", request.inputs, request.created_at_ms)


def _same_lane_ids(model: str, settings: Settings, count: int) -> list[str]:
    """Ids whose requests share one lane, so that they are batched together."""
    job = settings.job
    ids = [f"{model}-{i}" for i in range(200)]
    lane = lane_key(ids[0], job.lanes, job.max_parallelism)
    return [i for i in ids if lane_key(i, job.lanes, job.max_parallelism) == lane][:count]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    from pyflink.common import Row
    from pyflink.common.typeinfo import Types
    from pyflink.datastream import RuntimeExecutionMode, StreamExecutionEnvironment

    from aimass.tools.demo import build_demo_models, load_holdout
    from flink_jobs.inference_job import CONTROL_ROW, SOURCE_ROW, build_pipeline

    demo = Settings.load(env={}).paths.models_dir
    build_demo_models(demo)
    models = tmp_path_factory.mktemp("models")
    for name in ("digits", "mixed"):
        shutil.copytree(demo / name, models / name)
    _test_models(models)
    settings = Settings.load(env={}, overrides={
        "job.parallelism": "2", "paths.models_dir": str(models), "job.max_payload_bytes": str(MAX_PAYLOAD),
        "engine.use_gpu": "false",
    })
    codec = Codec(settings.paths.schemas_dir)
    images, _ = load_holdout(demo)
    rng = np.random.default_rng(8)

    weird = images[:2].copy()
    weird[0, :5] = [np.nan, np.inf, -np.inf, 0.0, -0.0]
    good = [make_request("digits", {"pixels": images[i : i + 1]}) for i in range(12)]
    good += [
        make_request("digits", {"pixels": weird}),
        make_request("digits", {"pixels": images[:40]}),  # more rows than max_batch_size (32)
        make_request("digits", {"pixels": images[:1]}, deadline_ms=2**63 - 1),
        make_request("digits", {"pixels": images[:1]}, version="1"),
    ]
    for rid in ("nul\x00ctl\x01\x7f", "ид-日本-🙂", "x" * MAX_REQUEST_ID_BYTES, "  "):
        good.append(InferenceRequest(rid, "digits", good[0].inputs, 2**62))  # created in the far future
    good += [_mixed(rows, rng) for rows in (1, 3, 50)]
    lookup_ids = _same_lane_ids("lookup", settings, 4)
    lookups = [np.array(v, np.int64).reshape(-1, 1) for v in ([0], [1, 7], [3, 2], [1])]
    requests = [make_request("lookup", {"idx": v}) for v in lookups]
    requests = [InferenceRequest(i, r.model, r.inputs, r.created_at_ms) for i, r in zip(lookup_ids, requests,
                                                                                           strict=True)]
    good += [requests[0], requests[2], requests[3]]
    failing = requests[1]
    big_mixed = _mixed((MAX_PAYLOAD - 2048) // 66, rng)
    tile = make_request("tile", {"x": np.ones((1, 1), np.float32)})
    owed = {
        failing.request_id: (Status.INTERNAL_ERROR, Reason.INTERNAL_ERROR),
        big_mixed.request_id: (Status.INVALID_INPUT, Reason.INVALID_INPUT),
        tile.request_id: (Status.INVALID_INPUT, Reason.INVALID_INPUT),
    }

    maker = BadRecords(codec, random.Random(8), settings.job.max_payload_bytes, "bad-")
    bad = [maker.make(kind) for kind in KINDS for _ in range(1 if kind == "oversized" else 3)]
    mutator = Mutator(codec, random.Random(8), "fuzz-")
    fuzzed = [mutator.make() for _ in range(80)]

    values: list[bytes | None] = [codec.encode_request(r) for r in good[:8]]
    values += [None, b""]
    values += [r.value for r in bad]
    values += [r.value for r in fuzzed]
    values += [codec.encode_request(r) for r in (failing, big_mixed, tile)]
    values += [codec.encode_request(r) for r in good[8:]]
    assert len(codec.encode_request(big_mixed)) <= MAX_PAYLOAD  # valid; only its result is too large
    rows = [Row(v, "requests", 0, offset, now_ms()) for offset, v in enumerate(values)]

    config = minicluster_configuration(settings)
    config.set_string("collect-sink.batch-size.max", "32mb")  # dead letters of 2 MiB records come back whole
    config.set_string("restart-strategy.type", "none")  # a failure fails the test at once instead of looping
    env = StreamExecutionEnvironment.get_execution_environment(config)
    # Streaming, as the job runs: batch mode sorts keyed inputs, which would reorder the route
    # updates Route sends each lane ahead of the requests they route.
    env.set_runtime_mode(RuntimeExecutionMode.STREAMING)
    source = env.from_collection(rows, type_info=SOURCE_ROW)
    control = env.from_collection(control_rows(settings), type_info=CONTROL_ROW)
    results, dead_letters, _, _ = build_pipeline(source, control, settings, READY)
    tagged = Types.TUPLE([Types.STRING(), Types.STRING(), Types.PRIMITIVE_ARRAY(Types.BYTE())])
    out = results.map(lambda r: ("result", r[0], r[1]), output_type=tagged).union(
        dead_letters.map(lambda r: ("dead", None, r[0]), output_type=tagged)
    )
    collected = list(out.execute_and_collect())
    return Run(
        models=models,
        good=good,
        bad=bad,
        fuzzed=fuzzed,
        owed=owed,
        nameless=[b"", b""],
        results=[(key, codec.decode_result(_bytes(v))) for tag, key, v in collected if tag == "result"],
        dead=[codec.decode_dead_letter(_bytes(v)) for tag, _, v in collected if tag == "dead"],
    )


def _bytes(value: object) -> bytes:
    """A Java byte[] as collected (bytes, or a list of signed ints) as Python bytes."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return np.asarray(value, dtype=np.int8).tobytes()


def test_every_result_is_keyed_by_its_request_id_and_fits_the_results_topic(run: Run) -> None:
    limit = Settings.load(env={}, overrides={"job.max_payload_bytes": str(MAX_PAYLOAD)}).job.output_record_limit
    codec = Codec()
    for key, result in run.results:
        assert key == result.request_id
        assert len(key.encode()) + len(codec.encode_result(result)) < limit


def test_valid_requests_get_ok_results_equal_to_a_direct_onnx_runtime_run(run: Run) -> None:
    by_id = {r.request_id: r for _, r in run.results}
    counts = Counter(r.request_id for _, r in run.results)
    for request in run.good:
        assert counts[request.request_id] == 1, request.request_id
        result = by_id[request.request_id]
        assert result.status is Status.OK, result.error
        version = request.version or max((p.name for p in (run.models / request.model).iterdir()), key=int)
        assert result.version == version
        session = ort.InferenceSession(str(run.models / request.model / version / "model.onnx"),
                                       providers=["CPUExecutionProvider"])
        expected = session.run(None, {t.name: t.to_numpy() for t in request.inputs})
        # A float64 sum of terms near +-2**63 loses the small ones, and how much depends on the
        # summation order, which batching may change: allow rounding relative to the terms' size.
        terms = [np.abs(t.to_numpy().astype(np.float64)) for t in request.inputs]
        scale = max((float(np.nanmax(np.where(np.isfinite(a), a, 0), initial=0)) for a in terms), default=0.0)
        atol = max(1e-6, 16 * np.finfo(np.float64).eps * scale * sum(a.shape[-1] for a in terms))
        for output, value in zip(session.get_outputs(), expected, strict=True):
            tolerance = atol if output.name == "total" else 1e-6
            np.testing.assert_allclose(result.output(output.name), value, rtol=1e-5, atol=tolerance)


@pytest.mark.parametrize("kind", KINDS)
def test_each_bad_record_gets_exactly_the_answer_its_kind_owes(run: Run, kind: str) -> None:
    dead_by_digest = Counter(digest(d.original) for d in run.dead)
    reasons = {digest(d.original): d.reason for d in run.dead}
    results = Counter(r.request_id for _, r in run.results)
    status = {r.request_id: r.status for _, r in run.results}
    records = [r for r in run.bad if r.kind == kind]
    assert records
    for record in records:
        key = digest(record.value)
        assert dead_by_digest[key] == 1, f"{kind}: {dead_by_digest[key]} dead letters"
        assert reasons[key] is record.reason
        if record.request_id is not None:
            assert results[record.request_id] == 1
            assert status[record.request_id] is record.status


def test_each_fuzzed_record_gets_one_result_and_a_dead_letter_exactly_when_it_is_not_ok(run: Run) -> None:
    dead = Counter(digest(d.original) for d in run.dead)
    reasons = {digest(d.original): d.reason for d in run.dead}
    results = Counter(r.request_id for _, r in run.results)
    status = {r.request_id: r.status for _, r in run.results}
    for record in run.fuzzed:
        assert record.request_id is not None and results[record.request_id] == 1, record.value[:60]
        key, got = digest(record.value), status[record.request_id]
        assert dead[key] == (0 if got is Status.OK else 1), (got, record.value[:60])
        if got is not Status.OK:
            assert reasons[key].status() is got
    assert Counter(status[r.request_id] for r in run.fuzzed)[Status.INVALID_INPUT] > 0  # the damage is felt


def test_tombstones_and_empty_values_get_one_dead_letter_each(run: Run) -> None:
    empty = [d for d in run.dead if d.original == b""]
    assert len(empty) == len(run.nameless)
    assert all(d.reason is Reason.UNDECODABLE and d.request_id is None for d in empty)


def test_requests_that_cannot_be_answered_in_full_get_a_typed_error_and_a_dead_letter(run: Run) -> None:
    by_id = {r.request_id: r for _, r in run.results}
    dead = {d.request_id: d for d in run.dead if d.request_id in run.owed}
    for rid, (status, reason) in run.owed.items():
        assert by_id[rid].status is status and by_id[rid].outputs == ()
        assert dead[rid].reason is reason
    big = [rid for rid, (status, _) in run.owed.items() if status is Status.INVALID_INPUT]
    assert all("more than the results topic takes" in (by_id[rid].error or "") for rid in big)


def test_nothing_else_is_answered(run: Run) -> None:
    with_id = [r for r in run.bad if r.request_id is not None]
    fuzzed_ids = {r.request_id for r in run.fuzzed}
    failed_fuzz = [r for _, r in run.results if r.request_id in fuzzed_ids and r.status is not Status.OK]
    assert len(run.results) == len(run.good) + len(with_id) + len(run.owed) + len(run.fuzzed)
    assert len(run.dead) == len(run.bad) + len(run.nameless) + len(run.owed) + len(failed_fuzz)
