"""Graphs on the real stack: deployed through the control topic, served by name; each final
result equal to the merge of direct ONNX Runtime runs of its members, with per-step timings;
a graph the job's routing cannot check refused with a control dead letter naming the step."""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import onnxruntime as ort
import pytest

from aimass.codec import Codec
from aimass.control.admin import ControlAdmin
from aimass.control.commands import Command
from aimass.graphs.cli import graph_deploy
from aimass.messages import InferenceRequest, InferenceResult, Status
from aimass.settings import Settings
from aimass.traffic import make_request, serve

pytestmark = pytest.mark.integration

MEMBERS = [{"name": "v1", "model": "digits", "version": "1", "outputs": ["probabilities"]},
           {"name": "v2", "model": "digits", "version": "2", "outputs": ["probabilities"]}]


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
    from aimass.demo import load_holdout

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
