"""Graphs run on the demo models: each answer equal to the merge of direct ONNX Runtime runs of
its members; a slow member leaves a partial answer at the timeout; a failing step's typed error."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from aimass.contract.messages import InferenceRequest, Status, Tensor
from aimass.graphs.run import Failure, GraphRunner
from aimass.graphs.spec import Member, check
from aimass.serving.engine import InferenceEngine
from aimass.serving.models import ModelRepository
from aimass.serving.sessions import SessionCache
from aimass.settings import EngineSettings, JobSettings

MODELS = Path(__file__).resolve().parents[3] / "models"
SETTINGS = JobSettings(max_batch_size=64, max_delay_ms=5)
CPU = EngineSettings(use_gpu=False)


@pytest.fixture(scope="module")
def repository() -> ModelRepository:
    if not (MODELS / "digits" / "2").is_dir():
        pytest.fail("the demo models are missing: run `make setup` (or `aimass models`)")
    return ModelRepository(MODELS, rescan_interval_s=0)


class SlowEngine(InferenceEngine):
    """Sleeps before serving version ``slow`` of any model: a member made slow."""

    slow = "2"
    delay_s = 0.5

    def run(self, requests: Any, *args: Any, **kwargs: Any) -> Any:
        if requests and requests[0].version == self.slow:
            time.sleep(self.delay_s)
        return super().run(requests, *args, **kwargs)


def runner(repository: ModelRepository, raw: dict[str, Any], engine_type: type = InferenceEngine) -> GraphRunner:
    def lookup(model: str, version: str | None) -> Member:
        spec = repository.resolve(model, version)
        return Member(spec.version, spec.inputs, spec.outputs)

    checked = check({"name": "g", "version": "1", **raw}, lookup)
    engine = engine_type(repository, SessionCache(CPU), SETTINGS)
    return GraphRunner(engine, checked.definition, [t.name for t in checked.outputs])


def direct(version: str, pixels: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(MODELS / "digits" / version / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"pixels": pixels}), strict=True))


def requests(n: int, deadline_ms: int | None = None) -> tuple[list[InferenceRequest], np.ndarray]:
    rng = np.random.default_rng(7)
    pixels = rng.random((n, 64), dtype=np.float32)
    now = int(time.time() * 1000)
    reqs = [InferenceRequest(f"r-{i}", "g", (Tensor.from_numpy("pixels", pixels[i:i + 1]),), now,
                             deadline_ms=deadline_ms) for i in range(n)]
    return reqs, pixels


ENSEMBLE = [{"name": "v1", "model": "digits", "version": "1", "outputs": ["probabilities"]},
            {"name": "v2", "model": "digits", "version": "2", "outputs": ["probabilities"]}]


def test_a_mean_ensemble_equals_the_mean_of_direct_runs(repository: ModelRepository) -> None:
    graph = runner(repository, {"root": {"ensemble": ENSEMBLE, "merge": "mean"}})
    reqs, pixels = requests(6)
    answers = graph.run(reqs, int(time.time() * 1000))
    want = (direct("1", pixels)["probabilities"] + direct("2", pixels)["probabilities"]) / 2
    for i, answer in enumerate(answers):
        assert not isinstance(answer.outcome, Failure), answer
        (probabilities,) = answer.outcome
        np.testing.assert_allclose(probabilities.to_numpy(), want[i:i + 1], rtol=1e-5, atol=1e-6)
        assert not answer.graph.partial and answer.graph.missing == ()
        assert sorted(s.step for s in answer.graph.steps) == ["root/v1", "root/v2"]
        assert all(s.status == "OK" and s.batch_size == 6 for s in answer.graph.steps)


def test_a_vote_and_a_concat_equal_direct_runs(repository: ModelRepository) -> None:
    reqs, pixels = requests(5)
    a, b = direct("1", pixels)["probabilities"], direct("2", pixels)["probabilities"]
    voted = runner(repository, {"root": {"ensemble": ENSEMBLE, "merge": "vote"}}).run(reqs, 0)
    for i, answer in enumerate(voted):
        label, votes = answer.outcome  # type: ignore[misc]
        picks = [int(a[i].argmax()), int(b[i].argmax())]
        assert int(votes.to_numpy()[0]) == (2 if picks[0] == picks[1] else 1)
        assert int(label.to_numpy()[0]) == (picks[0] if picks[0] == picks[1] else min(picks))
    joined = runner(repository, {"root": {"ensemble": ENSEMBLE, "merge": "concat"}}).run(reqs, 0)
    for i, answer in enumerate(joined):
        (probabilities,) = answer.outcome  # type: ignore[misc]
        np.testing.assert_allclose(probabilities.to_numpy()[0], np.concatenate([a[i], b[i]]), rtol=1e-6)


def test_merges_of_requests_of_different_row_counts_split_back_per_request(repository: ModelRepository) -> None:
    rng = np.random.default_rng(3)
    counts = [1, 3, 2, 1]
    blocks = [rng.random((n, 64), dtype=np.float32) for n in counts]
    reqs = [InferenceRequest(f"r-{i}", "g", (Tensor.from_numpy("pixels", b),), 0) for i, b in enumerate(blocks)]
    mean = runner(repository, {"root": {"ensemble": ENSEMBLE, "merge": "mean"}}).run(reqs, 0)
    vote = runner(repository, {"root": {"ensemble": ENSEMBLE, "merge": "vote"}}).run(reqs, 0)
    for block, m, v in zip(blocks, mean, vote, strict=True):
        a, b = direct("1", block)["probabilities"], direct("2", block)["probabilities"]
        (probabilities,) = m.outcome  # type: ignore[misc]
        assert probabilities.shape == (len(block), 10)
        np.testing.assert_allclose(probabilities.to_numpy(), (a + b) / 2, rtol=1e-5, atol=1e-6)
        label, votes = v.outcome  # type: ignore[misc]
        agree = a.argmax(axis=1) == b.argmax(axis=1)
        np.testing.assert_array_equal(votes.to_numpy(), np.where(agree, 2, 1))
        np.testing.assert_array_equal(label.to_numpy(), np.minimum(a.argmax(axis=1), b.argmax(axis=1)) * ~agree
                                      + a.argmax(axis=1) * agree)


def test_a_partial_concat_fills_the_missing_members_share_with_nan(repository: ModelRepository) -> None:
    graph = runner(repository, {"root": {"ensemble": ENSEMBLE, "merge": "concat", "k": 1, "timeout_ms": 100}},
                   SlowEngine)
    reqs, pixels = requests(3)
    for i, answer in enumerate(graph.run(reqs, int(time.time() * 1000))):
        assert answer.graph.missing == ("root/v2",)
        (probabilities,) = answer.outcome  # type: ignore[misc]
        values = probabilities.to_numpy()[0]
        np.testing.assert_allclose(values[:10], direct("1", pixels)["probabilities"][i], rtol=1e-6)
        assert np.isnan(values[10:]).all()


def test_a_slow_member_leaves_a_partial_answer_at_the_timeout(repository: ModelRepository) -> None:
    graph = runner(repository, {"root": {"ensemble": ENSEMBLE, "merge": "mean", "k": 2, "timeout_ms": 100}},
                   SlowEngine)
    reqs, pixels = requests(3)
    started = time.perf_counter()
    answers = graph.run(reqs, int(time.time() * 1000))
    took = time.perf_counter() - started
    assert took < 0.4, took  # answered at the timeout, not when the slow member finished (0.5 s)
    for i, answer in enumerate(answers):
        assert answer.graph.partial and answer.graph.missing == ("root/v2",)
        (probabilities,) = answer.outcome  # type: ignore[misc]
        np.testing.assert_allclose(probabilities.to_numpy(), direct("1", pixels)["probabilities"][i:i + 1],
                                   rtol=1e-5, atol=1e-6)


def test_a_member_still_running_past_its_timeout_is_not_queued_again(repository: ModelRepository) -> None:
    graph = runner(repository, {"root": {"ensemble": ENSEMBLE, "merge": "mean", "timeout_ms": 50}}, SlowEngine)
    reqs, _ = requests(2)
    first = graph.run(reqs, int(time.time() * 1000))
    started = time.perf_counter()
    second = graph.run(reqs, int(time.time() * 1000))
    took = time.perf_counter() - started
    assert [a.graph.missing for a in first + second] == [("root/v2",)] * 4
    assert [s.step for s in second[0].graph.steps] == ["root/v1"]  # v2 never ran for the second batch
    assert took < 0.04, took  # nothing to wait for: v2 is busy with the first batch (0.5 s)
    time.sleep(SlowEngine.delay_s)
    started = time.perf_counter()
    third = graph.run(reqs, int(time.time() * 1000))  # v2 free again: started, and waited for to the timeout
    assert time.perf_counter() - started >= 0.045
    assert third[0].graph.missing == ("root/v2",)
    both_slow = [{**ENSEMBLE[1], "name": "a"}, {**ENSEMBLE[1], "name": "b"}]
    slow = runner(repository, {"root": {"ensemble": both_slow, "merge": "mean", "timeout_ms": 50}}, SlowEngine)
    slow.run(reqs, int(time.time() * 1000))
    (failed, _) = slow.run(reqs, int(time.time() * 1000))  # every member busy: no answer, and why
    assert isinstance(failed.outcome, Failure) and failed.outcome.status is Status.DEADLINE_EXCEEDED
    assert "root/a, root/b still busy with an earlier batch" in failed.outcome.message


def test_a_sequence_answers_with_the_failing_steps_typed_error(repository: ModelRepository) -> None:
    # digits version 2 takes the probabilities of version 1 as its pixels: the check refuses it
    # (10 columns for 64), so a failure at run time is made by a deadline that has passed.
    graph = runner(repository, {"root": {"sequence": [{"name": "first", "model": "digits", "version": "1"},
                                                      {"name": "second", "model": "digits", "version": "2"}]}})
    reqs, pixels = requests(2)
    late = InferenceRequest("late", "g", reqs[0].inputs, 0, deadline_ms=1)
    answers = graph.run([reqs[0], late, reqs[1]], int(time.time() * 1000))
    assert isinstance(answers[1].outcome, Failure)
    assert answers[1].outcome.status is Status.DEADLINE_EXCEEDED and "step 'root/first'" in answers[1].outcome.message
    for i, answer in ((0, answers[0]), (1, answers[2])):  # its neighbours are served
        label, probabilities = answer.outcome  # type: ignore[misc]
        np.testing.assert_allclose(probabilities.to_numpy(), direct("2", pixels)["probabilities"][i:i + 1],
                                   rtol=1e-5, atol=1e-6)
        assert [s.step for s in answer.graph.steps] == ["root/first", "root/second"]


def test_a_switch_sends_unsure_requests_to_the_second_model(repository: ModelRepository) -> None:
    graph = runner(repository, {"root": {"switch": {
        "first": {"model": "digits", "version": "1"}, "output": "probabilities", "max_at_least": 0.9,
        "then": None, "else": {"model": "digits", "version": "2"}}}})
    reqs, pixels = requests(8)
    answers = graph.run(reqs, int(time.time() * 1000))
    sure = direct("1", pixels)["probabilities"].max(axis=-1) >= 0.9
    for i, answer in enumerate(answers):
        _, probabilities = answer.outcome  # type: ignore[misc]
        want = direct("1" if sure[i] else "2", pixels)["probabilities"][i:i + 1]
        np.testing.assert_allclose(probabilities.to_numpy(), want, rtol=1e-5, atol=1e-6)
        assert len(answer.graph.steps) == (1 if sure[i] else 2)
