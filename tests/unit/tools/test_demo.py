"""Demo models: built offline, idempotently and atomically, and good enough to demo."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from aimass.contract.messages import InferenceRequest, Status, Tensor
from aimass.serving.engine import InferenceEngine
from aimass.serving.models import ModelRepository
from aimass.serving.sessions import SessionCache
from aimass.settings import EngineSettings, JobSettings
from aimass.tools import demo

SETTINGS = JobSettings()
CPU = EngineSettings(use_gpu=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float | str]]:
    models_dir = tmp_path_factory.mktemp("models")
    return models_dir, demo.build_demo_models(models_dir)


@pytest.fixture(scope="module")
def models_dir(built: tuple[Path, dict[str, float | str]]) -> Path:
    return built[0]


def test_build_reports_what_it_built(built: tuple[Path, dict[str, float | str]]) -> None:
    models_dir, report = built
    for name, version in (("digits", "1"), ("digits", "2"), ("heavy", "1"), ("mixed", "1")):
        assert report[f"{name}/{version}"] == f"built {models_dir / name / version}"
    assert isinstance(report["digits/1.holdout_accuracy"], float)
    assert isinstance(report["digits/2.holdout_accuracy"], float)


@pytest.mark.parametrize("version", ["1", "2"])
def test_digits_holdout_accuracy_above_0_9(models_dir: Path, version: str) -> None:
    pixels, labels = demo.load_holdout(models_dir)
    assert pixels.dtype == np.float32 and labels.dtype == np.int64 and pixels.shape == (len(labels), 64)
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0 and len(labels) >= 300
    session = ort.InferenceSession(
        str(models_dir / "digits" / version / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    label, probabilities = session.run(["label", "probabilities"], {"pixels": pixels})
    accuracy = float(np.mean(label == labels))
    assert accuracy > 0.9
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)
    meta = json.loads((models_dir / "digits" / version / "model.json").read_text())
    assert meta["metrics"]["holdout_accuracy"] == pytest.approx(accuracy, abs=1e-5)


def test_demo_models_load_in_the_repository_as_declared(models_dir: Path) -> None:
    repository = ModelRepository(models_dir)
    assert repository.names() == ["digits", "heavy", "mixed"]  # the hidden holdout folder is no model
    assert repository.versions("digits") == ["1", "2"]
    sessions = SessionCache(CPU)
    for name, newest in (("digits", "2"), ("heavy", "1"), ("mixed", "1")):
        spec = repository.resolve(name)
        assert (spec.version, spec.max_batch_size, spec.max_delay_ms) == (newest, 32, 20)
        sessions.get(spec)  # raises if model.json and the ONNX file disagree
    sessions.get(repository.resolve("digits", "1"))
    assert [t.name for t in repository.resolve("digits").outputs] == ["label", "probabilities"]


def test_engine_serves_digits_and_heavy(models_dir: Path) -> None:
    engine = InferenceEngine(ModelRepository(models_dir), SessionCache(CPU), SETTINGS)
    pixels, labels = demo.load_holdout(models_dir)
    x = np.random.default_rng(0).standard_normal((3, 784)).astype(np.float32)
    requests = [
        InferenceRequest("d", "digits", (Tensor.from_numpy("pixels", pixels[:40]),), 0),
        InferenceRequest("h", "heavy", (Tensor.from_numpy("x", x),), 0),
    ]
    digits, heavy = engine.run(requests, [0, 0], 1)
    assert digits.status is Status.OK and heavy.status is Status.OK
    assert digits.output("probabilities").shape == (40, 10)
    assert np.mean(digits.output("label") == labels[:40]) > 0.85
    assert heavy.output("y").shape == (3, 10) and np.isfinite(heavy.output("y")).all()


def test_mixed_model_serves_every_wire_dtype(models_dir: Path) -> None:
    engine = InferenceEngine(ModelRepository(models_dir), SessionCache(CPU), SETTINGS)
    rng = np.random.default_rng(1)
    arrays = {
        "f64": rng.standard_normal((2, 3)),
        "i64": rng.integers(-(2**40), 2**40, (2, 3), dtype=np.int64),
        "i32": rng.integers(-1000, 1000, (2, 3), dtype=np.int32),
        "u8": rng.integers(0, 256, (2, 3), dtype=np.uint8),
        "flag": rng.random((2, 3)) > 0.5,
    }
    request = InferenceRequest("m", "mixed", tuple(Tensor.from_numpy(k, v) for k, v in arrays.items()), 0)
    (result,) = engine.run([request], [0], 1)
    assert result.status is Status.OK, result.error
    expected = sum(v.astype(np.float64).sum(axis=1) for v in arrays.values())
    np.testing.assert_allclose(result.output("total"), expected)
    for name, array in arrays.items():
        echo = result.output(f"{name}_echo")
        assert echo.dtype == array.dtype and np.array_equal(echo, array)


def test_second_build_skips_what_exists(models_dir: Path) -> None:
    onnx_file = models_dir / "digits" / "1" / "model.onnx"
    before = onnx_file.stat().st_mtime_ns
    report = demo.build_demo_models(models_dir)
    assert all(str(report[k]).startswith("present") for k in ("digits/1", "digits/2", "heavy/1", "mixed/1"))
    assert onnx_file.stat().st_mtime_ns == before


def test_no_work_in_progress_left_behind(models_dir: Path) -> None:
    leftovers = [p for p in models_dir.rglob(".*") if p.name != ".holdout" and p.parent != models_dir / ".holdout"]
    assert leftovers == []
    assert sorted(p.name for p in (models_dir / ".holdout").iterdir()) == ["digits.npz"]


def _writer(text: str) -> Callable[[Path], None]:
    def write(directory: Path) -> None:
        (directory / "model.onnx").write_text(text)
        (directory / "model.json").write_text("{}")

    return write


def test_force_replaces_an_existing_version(tmp_path: Path) -> None:
    assert demo._publish(tmp_path, "m", "1", _writer("old"), force=False) == f"built {tmp_path / 'm' / '1'}"
    assert demo._publish(tmp_path, "m", "1", _writer("new"), force=False).startswith("present")
    assert (tmp_path / "m" / "1" / "model.onnx").read_text() == "old"
    assert demo._publish(tmp_path, "m", "1", _writer("new"), force=True).startswith("built")
    assert (tmp_path / "m" / "1" / "model.onnx").read_text() == "new"
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["1"]


def test_failed_build_leaves_no_version_behind(tmp_path: Path) -> None:
    def half_written(directory: Path) -> None:
        (directory / "model.json").write_text("{}")
        raise RuntimeError("training crashed")

    with pytest.raises(RuntimeError, match="training crashed"):
        demo._publish(tmp_path, "m", "1", half_written, force=False)
    assert list((tmp_path / "m").iterdir()) == []
    assert ModelRepository(tmp_path).names() == []


def test_load_holdout_without_models_says_how_to_build(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="aimass models"):
        demo.load_holdout(tmp_path)


def test_main_prints_what_was_built(models_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main(["--models-dir", str(models_dir)]) == 0
    out = capsys.readouterr().out
    assert f"digits/1: present {models_dir / 'digits' / '1'}" in out
    assert "digits/2.holdout_accuracy: 0.9" in out and "heavy/1: present" in out
