"""Model compression (``aimass compress``) on the digits demo model: sizes, accuracy, errors."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from aimass.cli import main
from aimass.compress import methods
from aimass.compress.cli import METHOD_NAMES
from aimass.compress.report import Candidate, recommend
from aimass.contract.messages import InferenceRequest, Status, Tensor
from aimass.serving.engine import InferenceEngine
from aimass.serving.models import ModelRepository
from aimass.serving.sessions import SessionCache
from aimass.settings import EngineSettings, JobSettings
from aimass.tools import demo

SETTINGS = JobSettings()
CPU = EngineSettings(use_gpu=False)
FAST = ["--repeats", "3", "--warmup", "1"]


@pytest.fixture(scope="module")
def demo_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    models_dir = tmp_path_factory.mktemp("demo")
    demo.build_demo_models(models_dir)
    return models_dir


@pytest.fixture
def repo(demo_models: Path, tmp_path: Path) -> Path:
    """A repository with digits version 1 and its held-out set only, plus a model with no weights."""
    root = tmp_path / "models"
    shutil.copytree(demo_models / "digits" / "1", root / "digits" / "1")
    shutil.copytree(demo_models / demo.HOLDOUT_DIR, root / demo.HOLDOUT_DIR)
    _write_plain(root / "plain" / "1")
    return root


def _write_plain(directory: Path) -> None:
    """``y = x + 1``: no operator that int8 quantization or pruning applies to."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])], "plain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        initializer=[numpy_helper.from_array(np.ones((1, 4), np.float32), "one")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    directory.mkdir(parents=True)
    onnx.save(model, str(directory / "model.onnx"))
    (directory / "model.json").write_text(json.dumps({
        "inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 4]}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": [-1, 4]}],
    }))


def run(root: Path, *args: str) -> int:
    return main(["compress", *args, "--models-dir", str(root), *FAST])


def tree(root: Path) -> list[tuple[str, int]]:
    """Every path under ``root``, hidden ones included, with file sizes."""
    found = []
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            found.append((str(path.relative_to(root)), path.stat().st_size if path.is_file() else -1))
    return sorted(found)


def report_of(root: Path, name: str, version: str) -> dict[str, Any]:
    return json.loads((root / name / version / "report.json").read_text())


def candidate(report: dict[str, Any], role: str) -> dict[str, Any]:
    return next(c for c in report["candidates"] if c["role"] == role)


def test_dynamic_int8_is_over_twice_smaller_and_loses_at_most_a_point(repo: Path) -> None:
    assert run(repo, "digits", "--method", "dynamic-int8") == 0
    report = report_of(repo, "digits", "2")
    parent, new = candidate(report, "parent"), candidate(report, "new")
    assert new["size_bytes"] * 2 <= parent["size_bytes"]
    sizes = [(repo / "digits" / version / "model.onnx").stat().st_size for version in ("1", "2")]
    assert sizes[1] * 2 <= sizes[0]
    assert parent["accuracy"] - new["accuracy"] <= 0.01
    assert report["serving"] is True
    meta = json.loads((repo / "digits" / "2" / "model.json").read_text())
    assert meta["parent"] == "digits/1"
    assert meta["compression"]["parent"] == {"name": "digits", "version": "1"}
    assert meta["compression"]["methods"][0]["method"] == "dynamic-int8"
    assert meta["metrics"]["holdout_accuracy"] == pytest.approx(new["accuracy"], abs=1e-6)


def test_report_puts_the_parent_figures_beside_the_variant(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(repo, "digits", "--method", "fp16", "--report-dir", str(repo.parent / "reports")) == 0
    printed = capsys.readouterr().out
    report = report_of(repo, "digits", "2")
    parent = candidate(report, "parent")
    assert parent["version"] == "1" and parent["accuracy"] == pytest.approx(0.97, abs=0.03)
    for row in (parent, candidate(report, "new")):
        assert row["size_bytes"] > 0 and row["rows_per_s"] > 0
        assert set(row["latency_ms"]) == {"1", "32"}
        assert set(row["ratios_to_parent"]) == {"size", "speed_b1", "speed_b32", "rows_per_s"}
    assert candidate(report, "new")["ratios_to_parent"]["size"] > 1.2
    assert report["protocol"]["intra_op_threads"] == 1 and report["protocol"]["labels"] is True
    assert set(report["recommendations"]) == {"cpu", "gpu", "edge"}
    assert "not measured on GPU here" in report["gpu"] or report["gpu"] == "measured on the CUDA provider"
    markdown = (repo / "digits" / "2" / "report.md").read_text()
    assert "| 1 (parent) |" in markdown and "| 2 (new) |" in markdown and "## Recommendations" in markdown
    assert "1 (parent)" in printed and "recommended for edge" in printed
    assert (repo.parent / "reports" / "digits-2.json").exists() and (repo.parent / "reports" / "digits-2.md").exists()


def test_static_int8_with_calibration_data(repo: Path, tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    calibration = tmp_path / "calibration.npy"
    np.save(calibration, (load_digits().data[:200] / 16.0).astype(np.float32))
    assert run(repo, "digits", "--method", "static-int8", "--calibration", str(calibration)) == 0
    ops = {node.op_type for node in onnx.load(str(repo / "digits" / "2" / "model.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    report = report_of(repo, "digits", "2")
    assert candidate(report, "new")["drop_points"] <= 1.0
    assert report["steps"][0]["calibration_rows"] == 200


def test_prune_reaches_the_target_sparsity(repo: Path) -> None:
    assert run(repo, "digits", "--method", "prune", "--sparsity", "0.3", "--force") == 0
    model = onnx.load(str(repo / "digits" / "2" / "model.onnx"))
    weights = [numpy_helper.to_array(i) for i in model.graph.initializer if i.name.startswith("coefficient")]
    assert len(weights) == 2
    for w in weights:
        assert np.mean(w == 0) == pytest.approx(0.3, abs=1 / w.size)
    biases = [numpy_helper.to_array(i) for i in model.graph.initializer if i.name.startswith("intercepts")]
    assert all(np.all(b != 0) for b in biases)
    step = json.loads((repo / "digits" / "2" / "model.json").read_text())["compression"]["methods"][0]
    assert step["method"] == "prune" and step["sparsity"] == 0.3 and step["achieved_sparsity"] >= 0.3


def test_combined_methods_run_in_order_and_optimize_is_cpu_only(repo: Path) -> None:
    assert run(repo, "digits", "--method", "optimize,dynamic-int8", "--method", "prune", "--sparsity", "0.1") == 0
    meta = json.loads((repo / "digits" / "2" / "model.json").read_text())
    assert [s["method"] for s in meta["compression"]["methods"]] == ["prune", "dynamic-int8", "optimize"]
    assert meta["execution_providers"] == ["CPUExecutionProvider"]


def test_too_large_a_drop_is_written_but_not_serving_unless_forced(repo: Path) -> None:
    assert run(repo, "digits", "--method", "prune", "--sparsity", "0.95") == 0
    assert json.loads((repo / "digits" / "2" / "model.json").read_text())["serving"] is False
    repository = ModelRepository(repo, rescan_interval_s=0)
    assert repository.resolve("digits").version == "1"
    assert repository.resolve("digits", "2").serving is False
    assert run(repo, "digits", "--method", "prune", "--sparsity", "0.95", "--force") == 0
    report = report_of(repo, "digits", "3")
    assert report["serving"] is True and report["forced"] is True
    assert [c["role"] for c in report["candidates"]] == ["parent", "earlier", "new"]
    assert ModelRepository(repo, rescan_interval_s=0).resolve("digits").version == "3"


def test_new_version_loads_and_a_pinned_request_is_served(repo: Path) -> None:
    assert run(repo, "digits", "--method", "dynamic-int8", "--to-version", "1-int8") == 0
    repository = ModelRepository(repo, rescan_interval_s=0)
    spec = repository.resolve("digits", "1-int8")
    assert spec.parent == "digits/1"
    engine = InferenceEngine(repository, SessionCache(CPU), SETTINGS)
    x, y = demo.load_holdout(repo)
    req = InferenceRequest("r1", "digits", (Tensor.from_numpy("pixels", x[:8]),), 0, version="1-int8")
    (result,) = engine.run([req], [0], 1)
    assert result.status is Status.OK, result.error
    assert result.version == "1-int8"
    assert np.mean(result.output("label") == y[:8]) >= 0.75


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["digits", "--method", "prune", "--sparsity", "1.0"], "outside [0, 1)"),
        (["digits", "--method", "prune", "--sparsity", "-0.1"], "outside [0, 1)"),
        (["nosuch", "--method", "dynamic-int8"], "unknown model 'nosuch'"),
        (["digits", "--method", "dynamic-int8", "--from-version", "7"], "has no version '7'"),
        (["digits", "--method", "dynamic-int8", "--to-version", "1"], "already exists"),
        (["digits", "--method", "static-int8"], "needs --calibration"),
        (["digits", "--method", "static-int8", "--calibration", "{f64}"], "astype('float32')"),
        (["digits", "--method", "static-int8", "--calibration", "{narrow}"], "reshape it"),
        (["digits", "--method", "static-int8", "--calibration", "{missing}"], "cannot read it"),
        (["digits", "--method", "fp16,dynamic-int8"], "keep one of them"),
        (["plain", "--method", "dynamic-int8"], "use --method fp16 or optimize"),
        (["plain", "--method", "prune"], "pruning does not apply"),
    ],
)
def test_bad_requests_fail_with_one_line_and_leave_the_repository_alone(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    files = {"f64": tmp_path / "f64.npy", "narrow": tmp_path / "narrow.npy", "missing": tmp_path / "none.npy"}
    np.save(files["f64"], np.zeros((4, 64)))
    np.save(files["narrow"], np.zeros((4, 32), np.float32))
    args = [a.format(**{k: str(v) for k, v in files.items()}) for a in args]
    before = tree(repo)
    assert run(repo, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("aimass compress: error: ") and err.count("\n") == 1, err
    assert says in err
    assert tree(repo) == before


def test_a_failure_after_building_leaves_the_repository_alone(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*_: Any, **__: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("aimass.compress.build.save", broken)
    before = tree(repo)
    assert run(repo, "digits", "--method", "dynamic-int8") == 2
    assert "disk full" in capsys.readouterr().err
    assert tree(repo) == before


def test_plan_orders_methods_and_the_cli_knows_them_all() -> None:
    assert methods.plan(["optimize", "dynamic-int8", "prune", "prune"]) == ["prune", "dynamic-int8", "optimize"]
    assert sorted(METHOD_NAMES) == sorted(methods.METHODS)
    with pytest.raises(methods.CompressError, match="keep one of them"):
        methods.plan(["static-int8", "dynamic-int8"])


def _candidate(version: str, role: str, methods_: str, size: int, rows_per_s: float, drop: float) -> Candidate:
    return Candidate(version, role, methods_, size, size, {"1": 1.0, "32": 32 / rows_per_s * 1000}, rows_per_s,
                     None, 1 - drop / 100, 0.0, drop, True)


def test_recommendations_stay_within_the_accuracy_threshold() -> None:
    candidates = [
        _candidate("1", "parent", "-", 1000, 100.0, 0.0),
        _candidate("2", "earlier", "dynamic-int8", 250, 300.0, 0.5),
        _candidate("3", "earlier", "prune+dynamic-int8", 200, 400.0, 3.0),
        _candidate("4", "new", "fp16", 500, 150.0, 0.1),
    ]
    picks = recommend(candidates, 1.0, "not measured on GPU here: no device")
    assert picks["cpu"]["version"] == "2" and picks["edge"]["version"] == "2"
    assert picks["gpu"]["version"] == "4" and "not measured on GPU here" in picks["gpu"]["why"]
    assert recommend(candidates[:3], 1.0, "not measured")["gpu"]["version"] == "1"


def test_flush_subnormals_zeroes_only_subnormal_weights(tmp_path: Path) -> None:
    w = np.array([[1e-40, 0.5], [-2e-39, 1e-3]], np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        initializer=[numpy_helper.from_array(w, "w")],
    )
    onnx.save(helper.make_model(graph), str(tmp_path / "in.onnx"))
    assert methods.flush_subnormals(tmp_path / "in.onnx", tmp_path / "out.onnx") == 2
    out = numpy_helper.to_array(onnx.load(str(tmp_path / "out.onnx")).graph.initializer[0])
    np.testing.assert_array_equal(out, np.array([[0, 0.5], [0, 1e-3]], np.float32))
