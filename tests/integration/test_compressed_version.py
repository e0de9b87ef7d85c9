"""A compressed version next to its parent, served by the running job when a request pins it."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from aimass.cli import main as aimass_main
from aimass.contract.codec import Codec
from aimass.contract.messages import Status
from aimass.control.admin import ControlAdmin
from aimass.settings import Settings
from aimass.tools.traffic import collect_results, consumer, make_request, producer, send_requests

pytestmark = pytest.mark.integration


@pytest.fixture
def model_copy(test_settings: Settings) -> Iterator[str]:
    """digits/1 copied under a fresh model name (the shared repository's digits stay as they are)."""
    name = f"digits-int8-{uuid.uuid4().hex[:8]}"
    models_dir = test_settings.paths.models_dir
    shutil.copytree(models_dir / "digits" / "1", models_dir / name / "1")
    meta_path = models_dir / name / "1" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["name"] = name
    meta_path.write_text(json.dumps(meta))
    try:
        yield name
    finally:
        shutil.rmtree(models_dir / name, ignore_errors=True)


def _wait_until_served(settings: Settings, codec: Codec, model: str, version: str, pixels: np.ndarray) -> None:
    """Probe until the running job serves the new version (deployed by a sync just before).

    One CI run saw UNKNOWN_MODEL for a model copied in seconds before (cause not found; see the
    issue note), so the measured requests go only once the job answers a probe with OK.
    """
    cons = consumer(settings.kafka.bootstrap, settings.kafka.results_topic, from_beginning=False)
    prod = producer(settings.kafka.bootstrap)
    try:
        for _ in range(10):
            probe = make_request(model, {"pixels": pixels}, version=version)
            send_requests(prod, codec, settings.kafka.requests_topic, [probe])
            result = collect_results(cons, codec, {probe.request_id}, timeout_s=30).get(probe.request_id)
            if result is not None and result.status is Status.OK:
                return
            time.sleep(2)
    finally:
        prod.close()
        cons.close()
    raise AssertionError(f"the job never served {model}/{version}: last answer {result}")


def test_int8_version_is_served_when_pinned_and_parent_too(
    test_settings: Settings, inference_job: str, model_copy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from aimass.tools.demo import load_holdout

    models_dir = test_settings.paths.models_dir
    holdout = models_dir / ".holdout" / "digits.npz"
    code = aimass_main(["compress", model_copy, "--method", "dynamic-int8", "--models-dir", str(models_dir),
                        "--holdout", str(holdout), "--repeats", "5", "--warmup", "1"])
    assert code == 0, capsys.readouterr()
    with ControlAdmin(test_settings, activation_ms=0) as admin:  # the folder's new versions, deployed
        published = list(admin.sync(models_dir))
    assert any(line.startswith(f"deployed {model_copy} 1") for line in published), published
    assert any(line.startswith(f"deployed {model_copy} 2") for line in published), published
    int8 = models_dir / model_copy / "2" / "model.onnx"
    assert int8.stat().st_size * 2 <= (models_dir / model_copy / "1" / "model.onnx").stat().st_size

    codec = Codec(test_settings.paths.schemas_dir)
    images, labels = load_holdout(models_dir)
    _wait_until_served(test_settings, codec, model_copy, "2", images[:1])
    n = 60
    pinned = {v: [make_request(model_copy, {"pixels": images[i : i + 1]}, version=v) for i in range(n)]
              for v in ("1", "2")}
    requests = pinned["1"] + pinned["2"]
    cons = consumer(test_settings.kafka.bootstrap, test_settings.kafka.results_topic, from_beginning=False)
    prod = producer(test_settings.kafka.bootstrap)
    send_requests(prod, codec, test_settings.kafka.requests_topic, requests)
    results = collect_results(cons, codec, {r.request_id for r in requests}, timeout_s=120)
    prod.close()
    cons.close()

    for version, batch in pinned.items():
        session = ort.InferenceSession(str(Path(models_dir / model_copy / version / "model.onnx")))
        expected_labels, expected_probabilities = session.run(
            ["label", "probabilities"], {"pixels": images[:n]}
        )
        served = [results[r.request_id] for r in batch]
        assert all(r.status is Status.OK and r.version == version for r in served), served[0].error
        got_labels = np.concatenate([r.output("label") for r in served])
        got_probabilities = np.concatenate([r.output("probabilities") for r in served])
        if version == "1":
            np.testing.assert_array_equal(got_labels, expected_labels)
            np.testing.assert_allclose(got_probabilities, expected_probabilities, rtol=1e-5, atol=1e-6)
        else:
            # Dynamic int8 quantizes activations with a scale computed per batch, so outputs
            # depend on which requests shared a batch: equal to a direct run up to that.
            assert np.mean(got_labels == expected_labels) >= 0.95
            np.testing.assert_allclose(got_probabilities, expected_probabilities, atol=0.05)
        assert np.mean(got_labels == labels[:n]) > 0.9
