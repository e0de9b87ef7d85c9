"""The inference core: validation, grouping, batching, chunking and splitting of results."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from aimass.contract.messages import InferenceRequest, Reason, Status, Tensor
from aimass.serving.engine import InferenceEngine
from aimass.serving.models import ModelRepository
from aimass.serving.sessions import SessionCache
from aimass.settings import EngineSettings, JobSettings
from tests.onnx_models import LOOKUP_META, as_model, linear_meta, linear_onnx, lookup_onnx, write_model

NOW = 1_700_000_000_000
SETTINGS = JobSettings(max_batch_size=16, max_delay_ms=7)
CPU = EngineSettings(use_gpu=False)


def pair_onnx() -> onnx.ModelProto:
    """Two inputs: ``s = a + b`` with ``a`` float32 [N, 2, 3] and ``b`` float32 [N, 2, 3]."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["s"])],
        "pair",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 2, 3]) for n in ("a", "b")],
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, ["N", 2, 3])],
    )
    return as_model(graph)


def row_sum_onnx() -> onnx.ModelProto:
    """``total = sum(x, axis=1)`` for ``x`` float32 [N, W] of any width W."""
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x", "axes"], ["total"], keepdims=0)],
        "row_sum",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "W"])],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, ["N"])],
        initializer=[numpy_helper.from_array(np.array([1], np.int64), "axes")],
    )
    return as_model(graph)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    write_model(root, "wide", "1", linear_onnx(8, 5, seed=1), linear_meta(8, 5, max_batch_size=4, max_delay_ms=3))
    write_model(root, "wide", "2", linear_onnx(8, 5, seed=2), linear_meta(8, 5, max_batch_size=4, max_delay_ms=3))
    write_model(root, "narrow", "1", linear_onnx(3, 2, seed=3), linear_meta(3, 2))
    pair = [{"name": n, "dtype": "float32", "shape": [-1, 2, 3]} for n in ("a", "b")]
    write_model(root, "pair", "1", pair_onnx(), {"inputs": pair, "outputs": [{**pair[0], "name": "s"}]})
    write_model(root, "rowsum", "1", row_sum_onnx(), {
        "inputs": [{"name": "x", "dtype": "float32", "shape": [-1, None]}],
        "outputs": [{"name": "total", "dtype": "float32", "shape": [-1]}],
    })
    return root


@pytest.fixture
def engine(root: Path) -> InferenceEngine:
    return InferenceEngine(ModelRepository(root, rescan_interval_s=0), SessionCache(CPU), SETTINGS)


def request(model: str, rows: int = 1, dim: int = 8, version: str | None = None, seed: int = 0,
            deadline_ms: int | None = None, rid: str | None = None) -> InferenceRequest:
    x = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return InferenceRequest(rid or f"{model}-{seed}", model, (Tensor.from_numpy("x", x),), NOW - 50,
                            version=version, deadline_ms=deadline_ms)


def direct(root: Path, model: str, version: str, x: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(root / model / version / "model.onnx"), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"x": x}), strict=True))


def test_outputs_equal_a_direct_onnxruntime_run(engine: InferenceEngine, root: Path) -> None:
    requests = [request("wide", seed=i) for i in range(3)]
    results = engine.run(requests, [NOW - 10] * 3, NOW)
    for req, result in zip(requests, results, strict=True):
        assert result.status is Status.OK, result.error
        assert (result.request_id, result.model, result.version) == (req.request_id, "wide", "2")
        want = direct(root, "wide", "2", req.inputs[0].to_numpy())
        np.testing.assert_allclose(result.output("y"), want["y"], rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(result.output("top"), want["top"])
        assert result.output("top").dtype == np.int64


def test_pinned_version_serves_and_is_reported(engine: InferenceEngine, root: Path) -> None:
    req = request("wide", version="1")
    (result,) = engine.run([req], [NOW], NOW)
    assert result.version == "1"
    np.testing.assert_allclose(result.output("y"), direct(root, "wide", "1", req.inputs[0].to_numpy())["y"], rtol=1e-6)


def test_multi_row_requests_split_back_in_order(engine: InferenceEngine, root: Path) -> None:
    requests = [request("narrow", rows=r, dim=3, seed=r) for r in (1, 5, 2, 3)]
    results = engine.run(requests, [NOW] * 4, NOW)
    for req, result in zip(requests, results, strict=True):
        want = direct(root, "narrow", "1", req.inputs[0].to_numpy())
        assert result.output("y").shape == (req.rows, 2)
        np.testing.assert_allclose(result.output("y"), want["y"], rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(result.output("top"), want["top"])
        assert result.timings.batch_size == 11


def test_inputs_given_in_another_order_are_matched_by_name(engine: InferenceEngine) -> None:
    a = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    b = np.full((2, 2, 3), 100, np.float32)
    reqs = [
        InferenceRequest("ab", "pair", (Tensor.from_numpy("a", a), Tensor.from_numpy("b", b)), NOW),
        InferenceRequest("ba", "pair", (Tensor.from_numpy("b", b[:1]), Tensor.from_numpy("a", a[:1] * 2)), NOW),
    ]
    first, second = engine.run(reqs, [NOW, NOW], NOW)
    np.testing.assert_array_equal(first.output("s"), a + b)
    np.testing.assert_array_equal(second.output("s"), a[:1] * 2 + b[:1])


def test_batch_mixing_models_and_bad_requests_serves_the_good_ones(engine: InferenceEngine, root: Path) -> None:
    requests = [
        request("wide", seed=1),
        request("narrow", dim=3, seed=2),
        request("missing", seed=3),
        request("wide", dim=7, seed=4),  # wrong width
        request("wide", version="9", seed=5),
        request("narrow", rows=2, dim=3, seed=6),
        request("wide", version="1", seed=7),
    ]
    results = engine.run(requests, [NOW] * len(requests), NOW)
    assert [r.status for r in results] == [
        Status.OK, Status.OK, Status.UNKNOWN_MODEL, Status.INVALID_INPUT, Status.UNKNOWN_MODEL, Status.OK, Status.OK,
    ]
    assert [r.request_id for r in results] == [r.request_id for r in requests]
    assert [r.version for r in results] == ["2", "1", None, None, None, "1", "1"]
    assert "dimension 1 must be 8" in (results[3].error or "")
    assert results[2].outputs == () and results[2].timings.batch_size == 0
    np.testing.assert_allclose(
        results[5].output("y"), direct(root, "narrow", "1", requests[5].inputs[0].to_numpy())["y"], rtol=1e-6
    )


def test_onnxruntime_failure_fails_only_its_group(engine: InferenceEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = engine.repository.resolve("narrow")
    session = engine.sessions.get(spec)

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("device lost")

    monkeypatch.setattr(session, "run", explode)
    results = engine.run([request("narrow", dim=3), request("wide"), request("narrow", dim=3, seed=1)], [NOW] * 3, NOW)
    assert [r.status for r in results] == [Status.INTERNAL_ERROR, Status.OK, Status.INTERNAL_ERROR]
    assert "device lost" in (results[0].error or "") and "'narrow'" in (results[0].error or "")


def test_corrupt_model_gets_internal_error_while_others_serve(engine: InferenceEngine, root: Path) -> None:
    (root / "narrow" / "1" / "model.onnx").write_bytes(b"\x00garbage")
    results = engine.run([request("narrow", dim=3), request("wide")], [NOW] * 2, NOW)
    assert [r.status for r in results] == [Status.INTERNAL_ERROR, Status.OK]
    assert "model.onnx" in (results[0].error or "")


def test_past_deadline_requests_get_deadline_exceeded(engine: InferenceEngine) -> None:
    late = request("wide", deadline_ms=NOW - 1, rid="late")
    on_time = request("wide", deadline_ms=NOW, rid="on-time")
    assert engine.check(late, NOW) == (Reason.DEADLINE_EXCEEDED, "deadline passed 1 ms before the request ran")
    assert engine.check(on_time, NOW) is None
    results = engine.run([late, on_time], [NOW - 20, NOW - 20], NOW)
    assert [r.status for r in results] == [Status.DEADLINE_EXCEEDED, Status.OK]
    assert results[0].timings.end_to_end_ms == 50 and results[0].timings.queued_ms == 20


def rows_per_call(engine: InferenceEngine, model: str, name: str, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rows of input ``name`` in each ONNX Runtime call on ``model``, as the calls come."""
    session = engine.sessions.get(engine.repository.resolve(model))
    calls: list[int] = []
    real_run = session.run

    def counting(names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        calls.append(feed[name].shape[0])
        return real_run(names, feed)

    monkeypatch.setattr(session, "run", counting)
    return calls


def test_chunks_above_max_batch_size(engine: InferenceEngine, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = rows_per_call(engine, "wide", "x", monkeypatch)
    requests = [request("wide", seed=i) for i in range(5)] + [request("wide", rows=6, seed=9)]
    results = engine.run(requests, [NOW] * 6, NOW)
    assert calls == [4, 4, 3]  # max_batch_size 4 from model.json; the 6-row request spans chunks
    assert [r.timings.batch_size for r in results] == [4, 4, 4, 4, 4, 4]
    for req, result in zip(requests, results, strict=True):
        want = direct(root, "wide", "2", req.inputs[0].to_numpy())
        np.testing.assert_allclose(result.output("y"), want["y"], rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(result.output("top"), want["top"])


def test_rows_of_different_dynamic_widths_run_in_separate_calls(engine: InferenceEngine) -> None:
    requests = [request("rowsum", rows=r, dim=d, seed=i) for i, (r, d) in enumerate([(1, 3), (2, 5), (3, 3)])]
    results = engine.run(requests, [NOW] * 3, NOW)
    for req, result in zip(requests, results, strict=True):
        assert result.status is Status.OK, result.error
        np.testing.assert_allclose(result.output("total"), req.inputs[0].to_numpy().sum(axis=1), rtol=1e-5)
    assert [r.timings.batch_size for r in results] == [4, 2, 4]


def test_timings_describe_the_batch(engine: InferenceEngine) -> None:
    requests = [request("narrow", rows=2, dim=3), request("narrow", dim=3, seed=1)]
    results = engine.run(requests, [NOW - 30, NOW - 5], NOW)
    first, second = (r.timings for r in results)
    assert first.batch_size == second.batch_size == 3
    assert first.queued_ms >= 30 and second.queued_ms >= 5 and first.queued_ms - second.queued_ms == pytest.approx(25)
    assert 0 < first.inference_ms < 1000
    assert first.end_to_end_ms >= 50 and results[0].completed_at_ms >= NOW


def test_model_removed_after_check_gets_unknown_model(engine: InferenceEngine, root: Path) -> None:
    req = request("narrow", dim=3)
    assert engine.check(req, NOW) is None
    shutil.rmtree(root / "narrow")
    (result,) = engine.run([req], [NOW], NOW)
    assert result.status is Status.UNKNOWN_MODEL and "narrow" in (result.error or "")


def _tensor(name: str, dtype: str, shape: tuple[int, ...], data: bytes | None = None) -> Tensor:
    array = np.zeros(shape, dtype=dtype)
    return Tensor(name, dtype, shape, array.tobytes() if data is None else data)


@pytest.mark.parametrize(
    ("model", "version", "inputs", "reason", "words"),
    [
        ("nope", None, (_tensor("x", "float32", (1, 8)),), Reason.UNKNOWN_MODEL, "unknown model 'nope'"),
        ("wide", "7", (_tensor("x", "float32", (1, 8)),), Reason.UNKNOWN_MODEL, "versions: 1, 2"),
        ("../wide", None, (_tensor("x", "float32", (1, 8)),), Reason.INVALID_INPUT, "not valid"),
        ("wide", None, (), Reason.INVALID_INPUT, "missing ['x']"),
        ("wide", None, (_tensor("x", "float32", (1, 8)), _tensor("z", "float32", (1, 8))), Reason.INVALID_INPUT,
         "unexpected ['z']"),
        ("wide", None, (_tensor("x", "float32", (1, 8)),) * 2, Reason.INVALID_INPUT, "repeated ['x']"),
        ("wide", None, (_tensor("x", "float64", (1, 8)),), Reason.INVALID_INPUT, "must be float32, got float64"),
        ("wide", None, (_tensor("x", "float32", (8,)),), Reason.INVALID_INPUT, "rank 2"),
        ("wide", None, (_tensor("x", "float32", (1, 9)),), Reason.INVALID_INPUT, "dimension 1 must be 8"),
        ("wide", None, (_tensor("x", "float32", (0, 8)),), Reason.INVALID_INPUT, "no rows"),
        ("wide", None, (_tensor("x", "float32", (2, 8), b"\x00" * 60),), Reason.INVALID_INPUT, "needs 64 bytes"),
        ("pair", None, (_tensor("a", "float32", (1, 2, 3)), _tensor("b", "float32", (2, 2, 3))),
         Reason.INVALID_INPUT, "row count"),
    ],
)
def test_check_refuses_what_cannot_run(
    engine: InferenceEngine, model: str, version: str | None, inputs: tuple[Tensor, ...], reason: Reason, words: str
) -> None:
    req = InferenceRequest("r", model, inputs, NOW, version=version)
    problem = engine.check(req, NOW)
    assert problem is not None and problem[0] is reason and words in problem[1], problem
    (result,) = engine.run([req], [NOW], NOW)
    assert result.status is reason.status() and result.error == problem[1]


def test_check_accepts_a_valid_multi_row_request(engine: InferenceEngine) -> None:
    assert engine.check(request("wide", rows=100), NOW) is None


def test_batch_limits_from_metadata_falling_back_to_settings(engine: InferenceEngine) -> None:
    assert engine.batch_limits("wide", None) == (4, 3)
    assert engine.batch_limits("narrow", "1") == (16, 7)
    assert engine.batch_limits("missing", None) == (16, 7)


def test_run_of_nothing_is_nothing(engine: InferenceEngine) -> None:
    assert engine.run([], [], NOW) == []


# -- issue 8: requests valid by the metadata that still make ONNX Runtime fail --------------------


def same_width_onnx() -> onnx.ModelProto:
    """``s = a + b`` where both are float32 [N, K]: ``model.json`` cannot say that the two K agree."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["s"])],
        "same_width",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", "K"]) for n in ("a", "b")],
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, ["N", "K"])],
    )
    return as_model(graph)


@pytest.fixture
def fragile(root: Path) -> InferenceEngine:
    write_model(root, "lookup", "1", lookup_onnx(), LOOKUP_META)
    ab = [{"name": n, "dtype": "float32", "shape": [-1, None]} for n in ("a", "b")]
    write_model(root, "samewidth", "1", same_width_onnx(), {"inputs": ab, "outputs": [{**ab[0], "name": "s"}]})
    return InferenceEngine(ModelRepository(root, rescan_interval_s=0), SessionCache(CPU), SETTINGS)


def lookup(rid: str, *indices: int) -> InferenceRequest:
    idx = np.array(indices, np.int64).reshape(-1, 1)
    return InferenceRequest(rid, "lookup", (Tensor.from_numpy("idx", idx),), NOW)


def test_a_request_that_makes_onnxruntime_fail_does_not_fail_its_batch(
    fragile: InferenceEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = [lookup("a", 0), lookup("bad", 1, 7), lookup("c", 3, 2), lookup("worse", -9)]
    assert all(fragile.check(r, NOW) is None for r in requests)  # valid by the metadata
    calls = rows_per_call(fragile, "lookup", "idx", monkeypatch)
    results = fragile.run(requests, [NOW] * 4, NOW)
    assert [r.status for r in results] == [Status.OK, Status.INTERNAL_ERROR, Status.OK, Status.INTERNAL_ERROR]
    assert calls == [6, 1, 2, 2, 1]  # the batch fails, then each request runs alone
    np.testing.assert_array_equal(results[0].output("y"), [[10.0]])
    np.testing.assert_array_equal(results[2].output("y"), [[13.0], [12.0]])
    assert results[1].outputs == () and "'lookup'" in (results[1].error or "")
    assert [r.timings.batch_size for r in results] == [1, 0, 2, 0]


def test_dynamic_dimensions_that_disagree_get_internal_error_alone(fragile: InferenceEngine) -> None:
    def pair(rid: str, a_width: int, b_width: int) -> InferenceRequest:
        a, b = np.ones((1, a_width), np.float32), np.ones((1, b_width), np.float32)
        return InferenceRequest(rid, "samewidth", (Tensor.from_numpy("a", a), Tensor.from_numpy("b", b)), NOW)

    requests = [pair("ok-3", 3, 3), pair("bad", 3, 4), pair("ok-3b", 3, 3), pair("ok-4", 4, 4)]
    results = fragile.run(requests, [NOW] * 4, NOW)
    assert [r.status for r in results] == [Status.OK, Status.INTERNAL_ERROR, Status.OK, Status.OK]
    np.testing.assert_array_equal(results[0].output("s"), np.full((1, 3), 2.0))


def test_a_failing_batch_of_one_model_leaves_other_models_and_healthy_requests_alone(
    fragile: InferenceEngine,
) -> None:
    requests = [lookup("x", 9), request("wide"), lookup("y", 1), request("narrow", dim=3)]
    results = fragile.run(requests, [NOW] * 4, NOW)
    assert [r.status for r in results] == [Status.INTERNAL_ERROR, Status.OK, Status.OK, Status.OK]


def test_nan_and_infinite_inputs_are_served_and_their_outputs_travel(fragile: InferenceEngine) -> None:
    from aimass.contract.codec import Codec

    x = np.array([[np.nan, np.inf, -np.inf, 0.0, 1.0, 2.0, 3.0, 4.0]], np.float32)
    req = InferenceRequest("nan", "wide", (Tensor.from_numpy("x", x),), NOW)
    (result,) = fragile.run([req], [NOW], NOW)
    assert result.status is Status.OK
    assert np.isnan(result.output("y")).all()
    codec = Codec()
    assert codec.decode_result(codec.encode_result(result)).outputs == result.outputs


def test_error_messages_quote_what_a_request_sent_within_bounds(engine: InferenceEngine) -> None:
    from aimass.contract.limits import MAX_ERROR_CHARS

    huge = "n" * 1_000_000
    many = tuple(_tensor(f"in{i}", "float32", (1, 8)) for i in range(1024))
    for inputs in ((_tensor(huge, "float32", (1, 8)),), many, (_tensor("x", "float32", (1, 8)), *many)):
        req = InferenceRequest("r", "wide", inputs, NOW)
        problem = engine.check(req, NOW)
        assert problem is not None and problem[0] is Reason.INVALID_INPUT
        assert len(problem[1]) < 600, problem[1][:200]
        (result,) = engine.run([req], [NOW], NOW)
        assert result.status is Status.INVALID_INPUT and len(result.error or "") <= MAX_ERROR_CHARS


def test_a_failure_of_the_checks_themselves_fails_one_request(
    engine: InferenceEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aimass.serving.engine

    real = aimass.serving.engine.input_problem

    def broken(spec: Any, inputs: Any) -> str | None:
        if inputs[0].shape[0] == 2:
            raise IndexError("bug")
        return real(spec, inputs)

    monkeypatch.setattr(aimass.serving.engine, "input_problem", broken)
    odd = request("wide", rows=2)
    assert engine.check(odd, NOW) == (Reason.INTERNAL_ERROR, "request could not be checked: IndexError: bug")
    results = engine.run([request("wide"), odd], [NOW] * 2, NOW)
    assert [r.status for r in results] == [Status.OK, Status.INTERNAL_ERROR]


@pytest.mark.parametrize("deadline", [0, -1, -(2**63)])
def test_deadlines_at_or_before_the_epoch_are_exceeded(engine: InferenceEngine, deadline: int) -> None:
    req = request("wide", deadline_ms=deadline)
    assert engine.check(req, NOW) is not None
    (result,) = engine.run([req], [NOW], NOW)
    assert result.status is Status.DEADLINE_EXCEEDED


def test_far_future_deadline_and_creation_time_are_served(engine: InferenceEngine) -> None:
    from aimass.contract.codec import Codec

    req = InferenceRequest("f", "wide", request("wide").inputs, 2**63 - 1, deadline_ms=2**63 - 1)
    (result,) = engine.run([req], [NOW], NOW)
    assert result.status is Status.OK and result.timings.end_to_end_ms < 0
    Codec().encode_result(result)


def test_rows_of_no_data_are_bounded_for_dynamic_row_shapes(tmp_path: Path) -> None:
    """``(2**40, 0)`` carries no bytes; without a bound a batch would plan 2**40 rows."""
    from aimass.contract.limits import MAX_EMPTY_ROWS
    from aimass.serving.fit import input_problem
    from aimass.serving.models import ModelSpec, TensorSpec

    spec = ModelSpec("seq", "1", tmp_path, (TensorSpec("tokens", "int64", (None, None)),),
                     (TensorSpec("y", "float32", (None, 1)),))
    huge = Tensor("tokens", "int64", (2**40, 0), b"")
    problem = input_problem(spec, [huge])
    assert problem is not None and "rows of no data" in problem
    assert input_problem(spec, [Tensor("tokens", "int64", (MAX_EMPTY_ROWS, 0), b"")]) is None
    assert input_problem(spec, [Tensor("tokens", "int64", (3, 2), b"\x00" * 48)]) is None


def test_inner_dimensions_of_no_data_are_bounded_too(tmp_path: Path) -> None:
    """``(1, 2**31, 0)``: one row of no data, but a reduction over the empty axis would make
    ONNX Runtime allocate a (1, 2**31) output from a 40-byte request."""
    from aimass.contract.limits import MAX_EMPTY_ROWS
    from aimass.serving.fit import input_problem
    from aimass.serving.models import ModelSpec, TensorSpec

    spec = ModelSpec("dyn", "1", tmp_path, (TensorSpec("x", "float32", (None, None, None)),),
                     (TensorSpec("y", "float32", (None, None)),))
    for shape in ((1, 2**31, 0), (64, 65, 0), (1, 0, 2**20)):
        problem = input_problem(spec, [Tensor("x", "float32", shape, b"")])
        assert problem is not None and "of no data" in problem, shape
    assert input_problem(spec, [Tensor("x", "float32", (2, MAX_EMPTY_ROWS // 2, 0), b"")]) is None
