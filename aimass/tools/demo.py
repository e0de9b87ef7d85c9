"""Demo models, built at set-up time from data that ships with scikit-learn (no download).

* ``digits``/1 and ``digits``/2: small neural-network classifiers of scikit-learn's 8x8
  handwritten digits (64 float32 pixels in [0, 1] -> ``label`` int64 and ``probabilities``
  float32 [N, 10]), 64 and 128 hidden units, with their held-out set saved at
  ``<models_dir>/.holdout/digits.npz``. Version 2 is the newest, so it serves requests that
  pin no version.
* ``heavy``/1: an MLP 784-2048-2048-10 with fixed-seed random weights, for load tests where
  inference, not plumbing, dominates (``x`` float32 [N, 784] -> ``y`` float32 [N, 10]).
* ``mixed``/1: a tiny model with one input of each other wire dtype (float64, int64, int32,
  uint8, bool), so that every dtype of the data contract is exercised end to end.

Each version is written into a hidden directory and renamed into place, so a half-written
version never appears in the repository. Run as ``python -m aimass.tools.demo [--models-dir D] [--force]``.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from aimass.serving.models import METADATA_FILE, MODEL_FILE

SEED = 20240601
HOLDOUT_DIR = ".holdout"
BATCH_LIMITS = {"max_batch_size": 32, "max_delay_ms": 20}
PROVIDERS = ["CUDAExecutionProvider", "CPUExecutionProvider"]
HEAVY_LAYERS = (784, 2048, 2048, 10)
#: Digits versions and their hidden units.
DIGITS_VERSIONS = {"1": 64, "2": 128}


def build_demo_models(models_dir: Path, force: bool = False) -> dict[str, float | str]:
    """Build the demo models into ``models_dir`` unless present (or always, with ``force``).

    Returns:
        What happened to each model (``built`` or ``present``, with its path) and the digits
        classifier's held-out accuracy.
    """
    models_dir = Path(models_dir)
    report: dict[str, float | str] = {}
    for version, hidden in DIGITS_VERSIONS.items():
        report[f"digits/{version}"] = _publish(
            models_dir, "digits", version, functools.partial(_write_digits, version=version, hidden=hidden), force
        )
    if force or not (models_dir / HOLDOUT_DIR / "digits.npz").exists():
        _save_holdout(models_dir, *_digits_split()[1])
    for version in DIGITS_VERSIONS:
        meta = json.loads((models_dir / "digits" / version / METADATA_FILE).read_text(encoding="utf-8"))
        report[f"digits/{version}.holdout_accuracy"] = float(meta["metrics"]["holdout_accuracy"])
    report["heavy/1"] = _publish(models_dir, "heavy", "1", _write_heavy, force)
    report["mixed/1"] = _publish(models_dir, "mixed", "1", _write_mixed, force)
    return report


def load_holdout(models_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The digits held-out set: pixels float32 [N, 64] in [0, 1] and labels int64 [N].

    Raises:
        FileNotFoundError: the demo models were not built into ``models_dir``.
    """
    path = Path(models_dir) / HOLDOUT_DIR / "digits.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: build the demo models first (aimass models)")
    with np.load(path) as data:
        return data["X"].astype(np.float32), data["y"].astype(np.int64)


def _publish(models_dir: Path, name: str, version: str, write: Callable[[Path], None], force: bool) -> str:
    """Write a version into a hidden sibling directory, then rename it into place."""
    final = models_dir / name / version
    if final.exists() and not force:
        return f"present {final}"
    final.parent.mkdir(parents=True, exist_ok=True)
    building = final.parent / f".building-{version}-{uuid.uuid4().hex[:8]}"
    retired = final.parent / f".retired-{version}-{uuid.uuid4().hex[:8]}"
    try:
        building.mkdir()
        write(building)
        if final.exists():
            if not force:  # another builder finished first
                return f"present {final}"
            final.rename(retired)  # the version is missing only between these two renames
        try:
            building.rename(final)
        except OSError:
            if final.exists():  # another builder won the race with a complete version
                return f"present {final}"
            raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)
    return f"built {final}"


def _write_meta(directory: Path, meta: dict[str, Any]) -> None:
    (directory / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def _digits_split() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=SEED, stratify=y)
    return (x_train, y_train), (x_test, y_test)


def _write_digits(directory: Path, version: str = "1", hidden: int = 64) -> None:
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    (x_train, y_train), (x_test, y_test) = _digits_split()
    classifier = MLPClassifier(hidden_layer_sizes=(hidden,), max_iter=300, random_state=SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier.fit(x_train, y_train)
    onnx_model = to_onnx(
        classifier,
        initial_types=[("pixels", FloatTensorType([None, 64]))],
        options={id(classifier): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    path = directory / MODEL_FILE
    path.write_bytes(onnx_model.SerializeToString())
    # Accuracy of the exported file, as served, not of the scikit-learn object.
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    label, probabilities = session.run(["label", "probabilities"], {"pixels": x_test})
    if probabilities.shape != (len(x_test), 10):
        raise RuntimeError(f"exported digits model gives probabilities of shape {probabilities.shape}")
    accuracy = float(np.mean(label == y_test))
    _write_meta(directory, {
        "name": "digits",
        "version": version,
        "description": f"MLP ({hidden} hidden units) on scikit-learn's 8x8 digits; pixels scaled to [0, 1]",
        "inputs": [{"name": "pixels", "dtype": "float32", "shape": [-1, 64]}],
        "outputs": [
            {"name": "label", "dtype": "int64", "shape": [-1]},
            {"name": "probabilities", "dtype": "float32", "shape": [-1, 10]},
        ],
        **BATCH_LIMITS,
        "execution_providers": PROVIDERS,
        "labels": [str(d) for d in range(10)],
        "metrics": {"holdout_accuracy": round(accuracy, 6), "holdout_size": len(y_test)},
    })


def _save_holdout(models_dir: Path, x: np.ndarray, y: np.ndarray) -> None:
    folder = models_dir / HOLDOUT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".digits-{uuid.uuid4().hex[:8]}.tmp"
    try:
        with temporary.open("wb") as out:
            np.savez(out, X=x.astype(np.float32), y=y.astype(np.int64))
        os.replace(temporary, folder / "digits.npz")
    finally:
        temporary.unlink(missing_ok=True)


def _write_heavy(directory: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(SEED)
    nodes, weights = [], []
    previous = "x"
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(HEAVY_LAYERS)):
        w = (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        b = (rng.standard_normal(fan_out) * 0.01).astype(np.float32)
        weights += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        last = i == len(HEAVY_LAYERS) - 2
        out = "y" if last else f"h{i}"
        nodes.append(helper.make_node("Gemm", [previous, f"w{i}", f"b{i}"], [out if last else f"z{i}"]))
        if not last:
            nodes.append(helper.make_node("Relu", [f"z{i}"], [out]))
        previous = out
    graph = helper.make_graph(
        nodes, "heavy",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", HEAVY_LAYERS[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", HEAVY_LAYERS[-1]])],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="aimass.tools.demo")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(directory / MODEL_FILE))
    _write_meta(directory, {
        "name": "heavy",
        "version": "1",
        "description": "compute-heavy MLP 784-2048-2048-10, fixed-seed random weights (load tests)",
        "inputs": [{"name": "x", "dtype": "float32", "shape": [-1, HEAVY_LAYERS[0]]}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": [-1, HEAVY_LAYERS[-1]]}],
        **BATCH_LIMITS,
        "execution_providers": PROVIDERS,
    })


def _write_mixed(directory: Path) -> None:
    """``mixed``/1: ``total`` = sum of every input cast to float64, plus each input echoed."""
    import onnx
    from onnx import TensorProto, helper

    inputs = {"f64": TensorProto.DOUBLE, "i64": TensorProto.INT64, "i32": TensorProto.INT32,
              "u8": TensorProto.UINT8, "flag": TensorProto.BOOL}
    nodes, casts = [], []
    for name in inputs:
        nodes.append(helper.make_node("Cast", [name], [f"{name}_f"], to=TensorProto.DOUBLE))
        nodes.append(helper.make_node("ReduceSum", [f"{name}_f", "axis1"], [f"{name}_s"], keepdims=0))
        nodes.append(helper.make_node("Identity", [name], [f"{name}_echo"]))
        casts.append(f"{name}_s")
    nodes.append(helper.make_node("Sum", casts, ["total"]))
    axis = helper.make_tensor("axis1", TensorProto.INT64, [1], [1])
    graph = helper.make_graph(
        nodes, "mixed",
        [helper.make_tensor_value_info(n, t, ["N", 3]) for n, t in inputs.items()],
        [helper.make_tensor_value_info("total", TensorProto.DOUBLE, ["N"])]
        + [helper.make_tensor_value_info(f"{n}_echo", t, ["N", 3]) for n, t in inputs.items()],
        initializer=[axis],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="aimass.tools.demo")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(directory / MODEL_FILE))
    dtypes = {"f64": "float64", "i64": "int64", "i32": "int32", "u8": "uint8", "flag": "bool"}
    _write_meta(directory, {
        "name": "mixed",
        "version": "1",
        "description": "sum of inputs of every wire dtype, each cast to float64, plus the inputs echoed",
        "inputs": [{"name": n, "dtype": d, "shape": [-1, 3]} for n, d in dtypes.items()],
        "outputs": [{"name": "total", "dtype": "float64", "shape": [-1]}]
        + [{"name": f"{n}_echo", "dtype": d, "shape": [-1, 3]} for n, d in dtypes.items()],
        **BATCH_LIMITS,
        "execution_providers": ["CPUExecutionProvider"],
    })


def main(argv: list[str] | None = None) -> int:
    """Build the demo models and print what was built."""
    parser = argparse.ArgumentParser(prog="python -m aimass.tools.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, help="model repository (default: the paths.models_dir setting)")
    parser.add_argument("--force", action="store_true", help="rebuild models that are present")
    args = parser.parse_args(argv)
    if args.models_dir is None:
        from aimass.settings import Settings

        args.models_dir = Settings.load().paths.models_dir
    for key, value in build_demo_models(args.models_dir, force=args.force).items():
        print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
