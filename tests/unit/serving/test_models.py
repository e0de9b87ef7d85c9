"""The model repository (layout, versions, validation) and the session cache."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aimass.contract.messages import Reason
from aimass.serving import sessions as sessions_module
from aimass.serving.models import ModelError, ModelRepository, ModelSpec, TensorSpec, version_key
from aimass.serving.sessions import SessionCache
from aimass.settings import EngineSettings
from tests.onnx_models import linear_meta, linear_onnx, write_model

CPU_SETTINGS = EngineSettings(use_gpu=False)


@pytest.fixture
def repo_root(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    for version in ("1", "2", "10"):
        write_model(root, "linear", version, linear_onnx(seed=int(version)))
    write_model(root, "other", "1")
    return root


@pytest.fixture
def repository(repo_root: Path) -> ModelRepository:
    return ModelRepository(repo_root, rescan_interval_s=0)


def test_versions_sort_numerically_newest_last(repository: ModelRepository) -> None:
    assert repository.names() == ["linear", "other"]
    assert repository.versions("linear") == ["1", "2", "10"]
    assert repository.versions("absent") == []


def test_version_key_compares_digit_runs_as_numbers() -> None:
    assert sorted(["1.10", "1.9", "1.2", "a", "b"], key=version_key) == ["1.2", "1.9", "1.10", "a", "b"]


def test_resolve_without_version_picks_newest(repository: ModelRepository) -> None:
    spec = repository.resolve("linear")
    assert (spec.name, spec.version) == ("linear", "10")
    assert spec.path == repository.root / "linear" / "10"


def test_resolve_pinned_version(repository: ModelRepository) -> None:
    assert repository.resolve("linear", "2").version == "2"


def test_unknown_model_message_lists_models(repository: ModelRepository) -> None:
    with pytest.raises(ModelError) as caught:
        repository.resolve("nope")
    assert caught.value.reason is Reason.UNKNOWN_MODEL
    assert "'nope'" in caught.value.message and "linear, other" in caught.value.message


def test_unknown_version_message_lists_versions(repository: ModelRepository) -> None:
    with pytest.raises(ModelError) as caught:
        repository.resolve("linear", "3")
    assert caught.value.reason is Reason.UNKNOWN_MODEL
    assert "'3'" in caught.value.message and "1, 2, 10" in caught.value.message


@pytest.mark.parametrize(
    ("name", "version"),
    [("../linear", None), ("linear", ".."), ("linear", "../other/1"), ("..", None), ("a/b", None),
     ("", None), (".hidden", None), ("x" * 65, None), ("linear", "1\n")],
)
def test_malformed_names_and_path_traversal_refused(
    repository: ModelRepository, name: str, version: str | None
) -> None:
    with pytest.raises(ModelError) as caught:
        repository.resolve(name, version)
    assert caught.value.reason is Reason.INVALID_INPUT


def test_symlink_out_of_the_repository_refused(repo_root: Path, tmp_path: Path) -> None:
    outside = write_model(tmp_path / "elsewhere", "linear", "1").parent
    (repo_root / "escape").symlink_to(outside, target_is_directory=True)
    repository = ModelRepository(repo_root, rescan_interval_s=0)
    assert "escape" not in repository.names()
    with pytest.raises(ModelError) as caught:
        repository.resolve("escape", "1")
    assert caught.value.reason is Reason.INVALID_INPUT


def test_rescan_picks_up_new_version(repo_root: Path, repository: ModelRepository) -> None:
    assert repository.resolve("other").version == "1"
    write_model(repo_root, "other", "2")
    assert repository.resolve("other").version == "2"
    assert repository.versions("other") == ["1", "2"]


def test_refresh_picks_up_new_model_between_scans(repo_root: Path) -> None:
    repository = ModelRepository(repo_root, rescan_interval_s=3600)
    assert repository.names() == ["linear", "other"]
    write_model(repo_root, "fresh", "1")
    assert repository.names() == ["linear", "other"]
    repository.refresh()
    assert repository.resolve("fresh").version == "1"


def test_removed_version_is_no_longer_served(repo_root: Path, repository: ModelRepository) -> None:
    assert repository.resolve("linear").version == "10"
    for file in (repo_root / "linear" / "10").iterdir():
        file.unlink()
    (repo_root / "linear" / "10").rmdir()
    assert repository.resolve("linear").version == "2"


def test_hidden_and_incomplete_directories_are_not_versions(repo_root: Path, repository: ModelRepository) -> None:
    (repo_root / ".holdout").mkdir()
    (repo_root / "linear" / ".building-11-abc").mkdir()
    incomplete = repo_root / "linear" / "12"
    incomplete.mkdir()
    (incomplete / "model.json").write_text(json.dumps(linear_meta()))
    assert repository.names() == ["linear", "other"]
    assert repository.versions("linear") == ["1", "2", "10"]
    (incomplete / "model.onnx").write_bytes(linear_onnx().SerializeToString())
    assert repository.versions("linear")[-1] == "12"


def test_model_spec_load_parses_metadata(tmp_path: Path) -> None:
    meta = linear_meta(max_batch_size=8, max_delay_ms=0, parent="big", labels=["a", "b", "c"],
                       metrics={"accuracy": 0.5}, execution_providers=["CPUExecutionProvider"])
    spec = ModelSpec.load(write_model(tmp_path, "m", "3", meta=meta))
    assert spec.inputs == (TensorSpec("x", "float32", (None, 4)),)
    assert spec.outputs[1] == TensorSpec("top", "int64", (None,))
    assert (spec.max_batch_size, spec.max_delay_ms, spec.parent) == (8, 0, "big")
    assert spec.labels == ("a", "b", "c") and spec.metrics["accuracy"] == 0.5
    assert spec.execution_providers == ("CPUExecutionProvider",)
    assert spec.onnx_path == tmp_path / "m" / "3" / "model.onnx"


@pytest.mark.parametrize(
    ("meta", "words"),
    [
        ({**linear_meta(), "version": "1"}, "says version '1'"),
        ({**linear_meta(), "inputs": []}, "'inputs'"),
        ({**linear_meta(), "inputs": [{"name": "x", "dtype": "float16", "shape": [-1, 4]}]}, "float16"),
        ({**linear_meta(), "inputs": [{"name": "x", "dtype": "float32", "shape": [1, 4]}]}, "batch"),
        ({**linear_meta(), "max_batch_size": 0}, "max_batch_size"),
    ],
)
def test_invalid_metadata_refused_naming_the_file(tmp_path: Path, meta: dict[str, Any], words: str) -> None:
    directory = write_model(tmp_path, "m", "3")
    (directory / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError) as caught:
        ModelSpec.load(directory)
    assert caught.value.reason is Reason.INTERNAL_ERROR
    assert str(directory / "model.json") in caught.value.message and words in caught.value.message


def test_unparsable_metadata_refused_by_the_repository(repo_root: Path, repository: ModelRepository) -> None:
    (repo_root / "other" / "1" / "model.json").write_text("{not json")
    with pytest.raises(ModelError) as caught:
        repository.resolve("other")
    assert caught.value.reason is Reason.INTERNAL_ERROR and "model.json" in caught.value.message
    assert repository.resolve("linear").version == "10"


def test_session_cache_opens_one_session_per_version(repository: ModelRepository) -> None:
    sessions = SessionCache(CPU_SETTINGS)
    first = sessions.get(repository.resolve("linear"))
    assert sessions.get(repository.resolve("linear", "10")) is first
    assert sessions.get(repository.resolve("linear", "2")) is not first


def test_session_uses_configured_threads_and_no_spinning(repository: ModelRepository) -> None:
    session = SessionCache(EngineSettings(use_gpu=False, intra_op_threads=2)).get(repository.resolve("other"))
    options = session.get_session_options()
    assert options.intra_op_num_threads == 2 and options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert session.get_providers() == ["CPUExecutionProvider"]


def test_session_runs_like_a_direct_onnxruntime_session(repository: ModelRepository) -> None:
    import onnxruntime as ort

    spec = repository.resolve("linear")
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    direct = ort.InferenceSession(str(spec.onnx_path), providers=["CPUExecutionProvider"])
    ours = SessionCache(CPU_SETTINGS).get(spec)
    for got, want in zip(ours.run(None, {"x": x}), direct.run(None, {"x": x}), strict=True):
        np.testing.assert_array_equal(got, want)


def test_corrupt_model_refused_and_remembered_while_another_serves(
    repo_root: Path, repository: ModelRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo_root / "other" / "1" / "model.onnx").write_bytes(b"this is not a protobuf")
    sessions = SessionCache(CPU_SETTINGS)
    spec = repository.resolve("other")
    with pytest.raises(ModelError) as caught:
        sessions.get(spec)
    assert caught.value.reason is Reason.INTERNAL_ERROR
    assert str(spec.onnx_path) in caught.value.message
    opened: list[str] = []
    real = sessions_module.ort.InferenceSession

    def counting(path: str, *args: Any, **kwargs: Any) -> Any:
        opened.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(sessions_module.ort, "InferenceSession", counting)
    with pytest.raises(ModelError):
        sessions.get(spec)
    assert opened == []  # remembered as broken: not reloaded
    assert sessions.get(repository.resolve("linear")).run(None, {"x": np.ones((1, 4), np.float32)})


def test_repaired_model_is_served_again(repo_root: Path, repository: ModelRepository) -> None:
    path = repo_root / "other" / "1" / "model.onnx"
    path.write_bytes(b"garbage")
    sessions = SessionCache(CPU_SETTINGS)
    with pytest.raises(ModelError):
        sessions.get(repository.resolve("other"))
    path.write_bytes(linear_onnx().SerializeToString())
    os.utime(path, ns=(1, 1))  # a different stamp even on a coarse-clock file system
    assert sessions.get(repository.resolve("other")) is not None


@pytest.mark.parametrize(
    ("meta", "words"),
    [
        (linear_meta(in_dim=5), "dimension 1 is 4 in the ONNX file but 5"),
        ({**linear_meta(), "inputs": [{"name": "pixels", "dtype": "float32", "shape": [-1, 4]}]}, "inputs"),
        ({**linear_meta(), "inputs": [{"name": "x", "dtype": "float64", "shape": [-1, 4]}]}, "tensor(float)"),
        ({**linear_meta(), "inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 4, 1]}]}, "rank 2"),
        ({**linear_meta(), "outputs": [{"name": "z", "dtype": "float32", "shape": [-1, 3]}]}, "no output 'z'"),
        ({**linear_meta(), "outputs": [{"name": "top", "dtype": "int32", "shape": [-1]}]}, "tensor(int64)"),
    ],
)
def test_metadata_disagreeing_with_onnx_file_refused(tmp_path: Path, meta: dict[str, Any], words: str) -> None:
    write_model(tmp_path, "m", "1", meta=meta)
    spec = ModelRepository(tmp_path).resolve("m")
    with pytest.raises(ModelError) as caught:
        SessionCache(CPU_SETTINGS).get(spec)
    assert caught.value.reason is Reason.INTERNAL_ERROR
    assert str(spec.onnx_path) in caught.value.message and words in caught.value.message


def test_fixed_batch_dimension_in_onnx_file_refused(tmp_path: Path) -> None:
    write_model(tmp_path, "m", "1", linear_onnx(batch=1))
    with pytest.raises(ModelError, match="dimension 0 is 1 in the ONNX file but dynamic"):
        SessionCache(CPU_SETTINGS).get(ModelRepository(tmp_path).resolve("m"))


def test_provider_choice_logged_once(
    repository: ModelRepository, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sessions_module, "_LOGGED", set())
    sessions = SessionCache(CPU_SETTINGS)
    with caplog.at_level(logging.INFO, logger="aimass"):
        sessions.get(repository.resolve("linear"))
        sessions.get(repository.resolve("other"))
    lines = [r.getMessage() for r in caplog.records if "sessions run on" in r.getMessage()]
    assert lines == ["ONNX Runtime: sessions run on CPUExecutionProvider (providers CPUExecutionProvider)"]


def _gpu_here() -> bool:
    """A CUDA execution provider in this build and an NVIDIA device to run it on."""
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers() and Path("/dev/nvidia0").exists()


def test_gpu_asked_for_runs_on_the_gpu_when_there_is_one_else_on_the_cpu_alone(repository: ModelRepository) -> None:
    session = SessionCache(EngineSettings(use_gpu=True)).get(repository.resolve("linear"))
    expected = ["CUDAExecutionProvider", "CPUExecutionProvider"] if _gpu_here() else ["CPUExecutionProvider"]
    assert session.get_providers() == expected  # no GPU: a clean fallback; a GPU: it is used
    assert session.run(None, {"x": np.ones((2, 4), np.float32)})[0].shape == (2, 3)


@pytest.mark.skipif(not _gpu_here(), reason="no NVIDIA GPU with a CUDA execution provider on this machine")
def test_a_gpu_session_answers_as_the_cpu_does(repository: ModelRepository) -> None:
    spec = repository.resolve("linear")
    x = np.random.default_rng(0).standard_normal((64, 4)).astype(np.float32)
    on_gpu = SessionCache(EngineSettings(use_gpu=True)).get(spec)
    on_cpu = SessionCache(EngineSettings(use_gpu=False)).get(spec)
    assert on_gpu.get_providers()[0] == "CUDAExecutionProvider"
    for got, want in zip(on_gpu.run(None, {"x": x}), on_cpu.run(None, {"x": x}), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_version_marked_not_serving_is_skipped_by_newest_but_served_when_pinned(tmp_path: Path) -> None:
    write_model(tmp_path, "m", "1")
    write_model(tmp_path, "m", "2", meta=linear_meta(serving=False))
    repository = ModelRepository(tmp_path, rescan_interval_s=0)
    assert repository.resolve("m").version == "1"
    pinned = repository.resolve("m", "2")
    assert (pinned.version, pinned.serving) == ("2", False)
    assert repository.versions("m") == ["1", "2"]
    write_model(tmp_path, "m", "3", meta=linear_meta(serving=True))
    assert repository.resolve("m").version == "3"


def test_no_serving_version_is_an_unknown_model(tmp_path: Path) -> None:
    write_model(tmp_path, "m", "1", meta=linear_meta(serving=False))
    with pytest.raises(ModelError, match='has no serving version: 1 all say "serving": false') as caught:
        ModelRepository(tmp_path).resolve("m")
    assert caught.value.reason is Reason.UNKNOWN_MODEL


def test_serving_must_be_a_boolean(tmp_path: Path) -> None:
    write_model(tmp_path, "m", "1", meta=linear_meta(serving="no"))
    with pytest.raises(ModelError, match="'serving' must be true or false"):
        ModelRepository(tmp_path).resolve("m")
