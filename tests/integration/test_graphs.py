"""Graphs on the real stack: deployed through the control topic, served by name; each final
result equal to the merge of direct ONNX Runtime runs of its members, with per-step timings;
a slow member leaves a partial answer at the ensemble's timeout; a TaskManager killed mid-graph
loses and doubles no final result; a graph the job's routing cannot check refused with a
control dead letter naming the step."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from aimass.contract.codec import Codec
from aimass.contract.messages import InferenceRequest, InferenceResult, Status
from aimass.control.admin import ControlAdmin
from aimass.control.commands import Command
from aimass.graphs.cli import graph_deploy
from aimass.settings import Settings
from aimass.tools.traffic import consumer, count_results, make_request, serve, start_paced
from bench.slow_model import slow_digits

pytestmark = pytest.mark.integration

MEMBERS = [{"name": "v1", "model": "digits", "version": "1", "outputs": ["probabilities"]},
           {"name": "v2", "model": "digits", "version": "2", "outputs": ["probabilities"]}]


def _scale_model(root: Path, name: str) -> Path:
    """A preprocessing step: ``raw`` (pixels / 16) back to the digits model's ``pixels``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Mul", ["raw", "sixteen"], ["pixels"])], "scale",
        [helper.make_tensor_value_info("raw", TensorProto.FLOAT, ["n", 64])],
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", 64])],
        [numpy_helper.from_array(np.array(16.0, np.float32), "sixteen")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder = root / name / "1"
    folder.mkdir(parents=True)
    onnx.save(model, str(folder / "model.onnx"))
    (folder / "model.json").write_text(json.dumps({
        "name": name, "version": "1", "description": "pixels / 16 back to pixels (graph test)",
        "inputs": [{"name": "raw", "dtype": "float32", "shape": [-1, 64]}],
        "outputs": [{"name": "pixels", "dtype": "float32", "shape": [-1, 64]}],
        "max_batch_size": 64, "max_delay_ms": 2, "execution_providers": ["CPUExecutionProvider"]}))
    return folder


@pytest.fixture(scope="module")
def sequence_graph(test_settings: Settings, inference_job: str, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[str]:
    """A sequence deployed through the control topic: a preprocessing model (deployed with it,
    bytes on the blob topic) whose ``pixels`` feed digits 2."""
    scale, name = f"scale-{uuid.uuid4().hex[:6]}", f"seq-{uuid.uuid4().hex[:6]}"
    with ControlAdmin(test_settings, activation_ms=0) as admin:
        admin.deploy(_scale_model(tmp_path_factory.mktemp("scale"), scale))
    _deploy(test_settings, {"name": name, "version": "1", "root": {"sequence": [
        {"name": "scale", "model": scale}, {"name": "classify", "model": "digits", "version": "2"}]}})
    yield name


def _serve(settings: Settings, codec: Codec, requests: list[InferenceRequest]) -> dict[str, InferenceResult]:
    return serve(settings.kafka, codec, requests)


def _deploy(settings: Settings, graph: dict[str, object]) -> None:
    with ControlAdmin(settings) as admin:
        admin.publish(graph_deploy(json.dumps(graph)), in_ms=0)
    time.sleep(4)  # the job reads the control topic: the graph's first deploy routes every request after it


def _direct(settings: Settings, version: str, pixels: np.ndarray) -> np.ndarray:
    path = settings.paths.models_dir / "digits" / version / "model.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"pixels": pixels})[0]  # type: ignore[no-any-return]


def test_an_ensemble_and_a_switch_answer_as_their_members_merged(test_settings: Settings, inference_job: str) -> None:
    from aimass.tools.demo import load_holdout

    codec = Codec(test_settings.paths.schemas_dir)
    mean_name, switch_name = f"mean-{uuid.uuid4().hex[:6]}", f"cascade-{uuid.uuid4().hex[:6]}"
    _deploy(test_settings, {"name": mean_name, "version": "1", "root": {"ensemble": MEMBERS, "merge": "mean"}})
    _deploy(test_settings, {"name": switch_name, "version": "1", "root": {"switch": {
        "first": {"model": "digits", "version": "1"}, "output": "probabilities", "max_at_least": 0.95,
        "then": None, "else": {"model": "digits", "version": "2"}}}})
    images, _ = load_holdout(test_settings.paths.models_dir)
    pixels = np.ascontiguousarray(images[:40], dtype=np.float32)
    requests = [make_request(name, {"pixels": pixels[i:i + 1]}) for name in (mean_name, switch_name)
                for i in range(len(pixels))]
    results = _serve(test_settings, codec, requests)
    assert len(results) == len(requests)
    p1, p2 = _direct(test_settings, "1", pixels), _direct(test_settings, "2", pixels)
    for n, request in enumerate(requests):
        i = n % len(pixels)
        result = results[request.request_id]
        assert result.status is Status.OK, result.error
        assert result.version == "1" and result.graph is not None and not result.graph.partial
        if request.model == mean_name:
            np.testing.assert_allclose(result.output("probabilities"), (p1[i:i + 1] + p2[i:i + 1]) / 2,
                                       rtol=1e-5, atol=1e-6)
            assert sorted(s.step for s in result.graph.steps) == ["root/v1", "root/v2"]
        else:
            sure = float(p1[i].max()) >= 0.95
            np.testing.assert_allclose(result.output("probabilities"), (p1 if sure else p2)[i:i + 1],
                                       rtol=1e-5, atol=1e-6)
            assert [s.step for s in result.graph.steps] == (["root/first"] if sure else ["root/first", "root/else"])
        assert all(s.status == "OK" and s.batch_size >= 1 for s in result.graph.steps)


def test_a_sequence_feeds_its_steps_in_turn_and_a_slow_member_leaves_a_partial_answer_at_the_timeout(
    test_settings: Settings, inference_job: str, sequence_graph: str, tmp_path: Path
) -> None:
    from aimass.tools.demo import load_holdout

    codec = Codec(test_settings.paths.schemas_dir)
    slow, ensemble = f"slow-{uuid.uuid4().hex[:6]}", f"late-{uuid.uuid4().hex[:6]}"
    with ControlAdmin(test_settings, activation_ms=0) as admin:
        admin.deploy(slow_digits(tmp_path, slow, steps=20000))  # ~100 ms a row: far past the timeout
    timeout_ms = 40
    _deploy(test_settings, {"name": ensemble, "version": "1", "root": {
        "ensemble": [*MEMBERS, {"name": "slow", "model": slow}], "merge": "mean", "timeout_ms": timeout_ms}})
    images, _ = load_holdout(test_settings.paths.models_dir)
    pixels = np.ascontiguousarray(images[:30], dtype=np.float32)
    sequence = [make_request(sequence_graph, {"raw": pixels[i:i + 1] / 16}) for i in range(len(pixels))]
    late = [make_request(ensemble, {"pixels": pixels[i:i + 1]}) for i in range(10)]
    results = _serve(test_settings, codec, sequence + late)
    assert len(results) == len(sequence) + len(late)
    p1, p2 = _direct(test_settings, "1", pixels), _direct(test_settings, "2", pixels)
    for i, request in enumerate(sequence):
        result = results[request.request_id]
        assert result.status is Status.OK, result.error
        assert result.graph is not None and not result.graph.partial
        assert [s.step for s in result.graph.steps] == ["root/scale", "root/classify"]
        np.testing.assert_allclose(result.output("probabilities"), p2[i:i + 1], rtol=1e-5, atol=1e-6)
    for i, request in enumerate(late):
        result = results[request.request_id]
        assert result.status is Status.OK, result.error
        assert result.graph is not None and result.graph.partial, result.graph
        assert result.graph.missing == ("root/slow",)
        assert sorted(s.step for s in result.graph.steps) == ["root/v1", "root/v2"]
        assert all(s.finished_ms < timeout_ms + 10 for s in result.graph.steps)  # answered at the timeout
        np.testing.assert_allclose(result.output("probabilities"), (p1[i:i + 1] + p2[i:i + 1]) / 2,
                                   rtol=1e-5, atol=1e-6)


def test_a_taskmanager_killed_mid_graph_loses_and_doubles_no_final_result(
    test_settings: Settings, local_stack: Any, inference_job: str, sequence_graph: str
) -> None:
    from aimass.stack import jobs
    from aimass.stack.flink import FlinkCluster
    from aimass.tools.demo import load_holdout

    codec = Codec(test_settings.paths.schemas_dir)
    ensemble = f"mean-{uuid.uuid4().hex[:6]}"
    _deploy(test_settings, {"name": ensemble, "version": "1", "root": {"ensemble": MEMBERS, "merge": "mean"}})
    images, _ = load_holdout(test_settings.paths.models_dir)
    pixels = np.ascontiguousarray(images[:100], dtype=np.float32)
    n, rate = 1200, 150.0
    requests = [make_request(ensemble, {"pixels": pixels[i % 100:i % 100 + 1]}) if i % 2 else
                make_request(sequence_graph, {"raw": pixels[i % 100:i % 100 + 1] / 16}) for i in range(n)]
    cons = consumer(test_settings.kafka, test_settings.kafka.results_topic, from_beginning=False)
    sender = start_paced(test_settings.kafka, codec, test_settings.kafka.requests_topic, requests, rate)
    killed: list[int] = []

    def kill_once(answered: int) -> None:
        if not killed and answered >= n // 4:
            killed.append(answered)
            local_stack.flink.taskmanager(0).kill()  # SIGKILL while graph requests are in flight
            local_stack.up()

    results, counts = count_results(cons, codec, {r.request_id for r in requests}, timeout_s=240,
                                    linger_s=4 * test_settings.job.checkpoint_interval_ms / 1000, tick=kill_once)
    cons.close()
    sender.join(timeout=10)
    assert killed, "the TaskManager was never killed: too few results before the kill"
    assert len(results) == n, f"{n - len(results)} of {n} requests got no final result"
    assert not [i for i, c in counts.items() if c > 1], "a request got two final results"
    p1, p2 = _direct(test_settings, "1", pixels), _direct(test_settings, "2", pixels)
    for i, request in enumerate(requests):
        result = results[request.request_id]
        assert result.status is Status.OK and result.graph is not None and not result.graph.partial, result
        expected = (p1[i % 100] + p2[i % 100]) / 2 if i % 2 else p2[i % 100]
        np.testing.assert_allclose(result.output("probabilities")[0], expected, rtol=1e-5, atol=1e-6)
        assert len(result.graph.steps) == 2
    jobs.wait_running(FlinkCluster(test_settings), inference_job, timeout_s=120)  # for the tests after this one


def test_a_graph_the_jobs_routing_cannot_check_is_refused_naming_the_step(
    test_settings: Settings, inference_job: str
) -> None:
    name = f"bad-{uuid.uuid4().hex[:6]}"
    text = json.dumps({"name": name, "version": "1", "root": {
        "sequence": [{"name": "first", "model": "digits"}, {"name": "second", "model": f"absent-{name}"}]}})
    with ControlAdmin(test_settings) as admin:
        command = Command(graph_deploy(text), int(time.time() * 1000))
        admin._send(command)  # past the admin's own check, as a stale client would
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            letters = [d for d in admin.refusals(last=50) if d.request_id == command.command_id]
            if letters:
                break
            time.sleep(1)
    assert letters, "no control dead letter for the refused graph"
    assert "root/second" in letters[0].message and "is not deployed" in letters[0].message, letters[0].message
