"""Make a compressed version of a model in the repository, measure it, and publish it atomically.

The new version is built in a hidden folder inside the model's folder
(``<models>/<name>/.compress-<id>/``), validated by loading it through
:class:`aimass.serving.models.ModelRepository` and :class:`aimass.serving.models.SessionCache`, measured
beside its parent, and only then renamed into ``<models>/<name>/<version>``. Any failure
removes the hidden folder: the repository is left as it was.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from aimass.compress import measure
from aimass.compress.methods import (
    DYNAMIC_INT8,
    FP16,
    OPTIMIZE,
    PRUNE,
    STATIC_INT8,
    CompressError,
    load_calibration,
    optimize,
    plan,
    prune,
    quantize_dynamic_int8,
    quantize_static_int8,
    to_fp16,
)
from aimass.compress.report import Candidate, Report, recommend, save
from aimass.contract.limits import NAME_PATTERN
from aimass.serving.models import METADATA_FILE, MODEL_FILE, ModelError, ModelRepository, ModelSpec
from aimass.serving.sessions import SessionCache
from aimass.settings import EngineSettings
from aimass.tools.demo import HOLDOUT_DIR

log = logging.getLogger("aimass")


@dataclass(frozen=True)
class CompressRequest:
    """What to compress and how; the CLI's flags one for one."""

    models_dir: Path
    name: str
    methods: tuple[str, ...]
    from_version: str | None = None
    """None: the newest serving version that is not itself a compressed variant."""
    to_version: str | None = None
    """None: one more than the highest numeric version."""
    sparsity: float = 0.5
    calibration: Path | None = None
    opt_level: str = "extended"
    per_channel: bool = False
    max_accuracy_drop: float = 1.0
    """Percentage points the variant may lose before it is written as not serving."""
    force: bool = False
    """Keep the variant serving even past ``max_accuracy_drop``."""
    repeats: int = 50
    warmup: int = 5
    eval_rows: int = 512
    holdout: Path | None = None
    """Labelled held-out set; None: ``<models>/.holdout/<name>.npz`` when it exists."""
    threads: int = 1
    compare_earlier: bool = True
    """Also measure earlier variants of the same parent, so the recommendations cover them."""
    report_dir: Path | None = None
    """Also write the report here as ``<name>-<version>.json`` and ``.md``."""
    batches: tuple[int, ...] = field(default=measure.BATCHES)


def compress(req: CompressRequest) -> Report:
    """Build, validate, measure and publish a compressed version; returns its report.

    Raises:
        CompressError: anything that stops the run, in one line that names the fix; the
            repository is then unchanged.
    """
    steps = plan(req.methods)
    if PRUNE in steps and not 0.0 <= req.sparsity < 1.0:
        raise CompressError(f"--sparsity {req.sparsity} is outside [0, 1): give the share of weights to zero, e.g. 0.5")
    if STATIC_INT8 in steps and req.calibration is None:
        raise CompressError(f"{STATIC_INT8} needs --calibration FILE.npy/.npz with representative inputs")
    if req.calibration is not None and STATIC_INT8 not in steps:
        raise CompressError(f"--calibration is used by {STATIC_INT8} only: drop it or add --method {STATIC_INT8}")
    if req.repeats < 1 or req.warmup < 0 or req.eval_rows < 1:
        raise CompressError("--repeats and --eval-rows must be at least 1 and --warmup at least 0")
    repo = ModelRepository(req.models_dir, rescan_interval_s=0.0)
    try:
        parent = repo.resolve(req.name, req.from_version or _newest_original(repo, req.name))
    except ModelError as exc:
        raise CompressError(f"{exc.message}: pick an existing model and --from-version") from None
    versions = repo.versions(req.name)
    to_version = req.to_version or _next_version(versions)
    if not NAME_PATTERN.fullmatch(to_version):
        raise CompressError(f"--to-version {to_version!r} is not valid: use A-Z a-z 0-9 _ . -, no leading dot")
    final = req.models_dir / req.name / to_version
    if to_version in versions or final.exists():
        raise CompressError(f"{req.name} version {to_version} already exists at {final}: choose another --to-version")
    calibration = None if req.calibration is None else load_calibration(req.calibration, parent)
    if req.report_dir is not None:
        req.report_dir.mkdir(parents=True, exist_ok=True)  # fail before building, not after publishing

    temporary = req.models_dir / req.name / f".compress-{to_version}-{uuid.uuid4().hex[:8]}"
    try:
        temporary.mkdir()
        build = temporary / req.name / to_version
        build.mkdir(parents=True)
        recorded = _apply(steps, parent.onnx_path, temporary, build / MODEL_FILE, req, calibration)
        meta = _metadata(parent, to_version, recorded)
        _write_json(build / METADATA_FILE, meta)
        spec = _validate(temporary, req.name, to_version, req.threads)
        report = _measure(req, parent, spec, steps, recorded, repo)
        meta["serving"] = report.serving
        meta["metrics"] = _metrics(report)
        _write_json(build / METADATA_FILE, meta)
        save(report, build)
        _validate(temporary, req.name, to_version, req.threads)
        try:
            build.rename(final)  # the one step that makes it visible
        except OSError as exc:
            raise CompressError(f"cannot move the new version to {final} ({exc}): use another --to-version") from None
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    if req.report_dir is not None:
        _copy_report(final, req.report_dir, f"{req.name}-{to_version}")
    return report


def _newest_original(repo: ModelRepository, name: str) -> str | None:
    """The newest serving version that is not itself a compressed variant (None: let resolve() pick)."""
    for version in reversed(repo.versions(name)):
        raw = _read_meta(repo.root / name / version)
        if raw is not None and "compression" not in raw and raw.get("serving", True) is not False:
            return version
    return None


def _read_meta(directory: Path) -> dict[str, Any] | None:
    try:
        raw = json.loads((directory / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def _next_version(versions: list[str]) -> str:
    numbers = [int(v) for v in versions if v.isdigit()]
    if len(numbers) != len(versions):
        raise CompressError(f"versions {', '.join(versions)} are not all numbers: name the new one with --to-version")
    return str(max(numbers, default=0) + 1)


def _apply(
    steps: list[str], source: Path, work: Path, target: Path, req: CompressRequest,
    calibration: dict[str, np.ndarray] | None,
) -> list[dict[str, Any]]:
    recorded = []
    current = source
    for i, method in enumerate(steps):
        out = work / f"step{i}-{method}.onnx"
        if method == PRUNE:
            params = prune(current, out, req.sparsity)
        elif method == DYNAMIC_INT8:
            params = quantize_dynamic_int8(current, out, req.per_channel)
        elif method == STATIC_INT8:
            assert calibration is not None  # checked by compress()
            params = quantize_static_int8(current, out, calibration, req.per_channel)
        elif method == FP16:
            params = to_fp16(current, out)
        elif method == OPTIMIZE:
            params = optimize(current, out, req.opt_level)
        else:  # pragma: no cover - plan() admits known methods only
            raise CompressError(f"unknown method {method}")
        recorded.append({"method": method, **params})
        current = out
    shutil.copyfile(current, target)
    return recorded


def _metadata(parent: ModelSpec, version: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((parent.path / METADATA_FILE).read_text(encoding="utf-8"))
    methods = "+".join(s["method"] for s in steps)
    meta.update({
        "name": parent.name,
        "version": version,
        "parent": f"{parent.name}/{parent.version}",
        "description": f"{parent.name} {parent.version} compressed with {methods}"
        + (f"; {parent.description}" if parent.description else ""),
        "compression": {
            "parent": {"name": parent.name, "version": parent.version},
            "methods": steps,
            "created_by": "aimass compress",
        },
    })
    if any(s["method"] == OPTIMIZE and s["level"] != "basic" for s in steps):
        # Extended and all-level graphs use ONNX Runtime's CPU-only fused operators.
        meta["execution_providers"] = [measure.CPU]
    meta.pop("serving", None)
    meta.pop("metrics", None)
    return meta


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _validate(root: Path, name: str, version: str, threads: int) -> ModelSpec:
    """Load the version as serving would: its metadata, then a session checked against it."""
    try:
        spec = ModelRepository(root, rescan_interval_s=0.0).resolve(name, version)
        SessionCache(EngineSettings(use_gpu=False, intra_op_threads=threads)).get(spec)
    except ModelError as exc:
        raise CompressError(f"the compressed model does not load ({exc.message}): try another --method") from None
    return spec


def _measure(
    req: CompressRequest, parent: ModelSpec, new: ModelSpec, steps: list[str], recorded: list[dict[str, Any]],
    repo: ModelRepository,
) -> Report:
    holdout = req.holdout or req.models_dir / HOLDOUT_DIR / f"{req.name}.npz"
    data = measure.eval_data(parent, holdout, req.eval_rows)
    gpu_problem = measure.gpu_unavailable()
    parent_session = measure.session(parent.onnx_path, req.threads)
    reference = measure.outputs(parent_session, parent, data)
    parent_accuracy = None if data.labels is None else float(np.mean(reference.top1 == data.labels))

    def figures(spec: ModelSpec, role: str, methods: str, serving: bool) -> Candidate:
        sess = parent_session if role == "parent" else measure.session(spec.onnx_path, req.threads)
        got = reference if role == "parent" else measure.outputs(sess, spec, data)
        top1, max_diff = measure.agreement(reference, got)
        accuracy = None if data.labels is None else float(np.mean(got.top1 == data.labels))
        if accuracy is not None and parent_accuracy is not None:
            drop = (parent_accuracy - accuracy) * 100
        else:
            drop = (1.0 - top1) * 100
        latency = {str(b): measure.latency_ms(sess, data, b, req.repeats, req.warmup) for b in req.batches}
        size, gz = measure.file_sizes(spec.onnx_path)
        gpu_rows = None
        if gpu_problem is None:
            gpu_sess = measure.session(spec.onnx_path, req.threads, (measure.CUDA, measure.CPU))
            ms = measure.latency_ms(gpu_sess, data, req.batches[-1], req.repeats, req.warmup)
            gpu_rows = req.batches[-1] / ms * 1000.0
        return Candidate(
            version=spec.version, role=role, methods=methods, size_bytes=size, gzip_bytes=gz, latency_ms=latency,
            rows_per_s=req.batches[-1] / latency[str(req.batches[-1])] * 1000.0, accuracy=accuracy,
            top1_agreement=top1, max_abs_diff=max_diff, drop_points=round(drop, 4), serving=serving,
            gpu_rows_per_s=gpu_rows,
        )

    candidates = [figures(parent, "parent", "-", parent.serving)]
    if req.compare_earlier:
        for version, methods in _earlier_variants(repo, parent):
            try:
                earlier = repo.resolve(parent.name, version)
                candidates.append(figures(earlier, "earlier", methods, earlier.serving))
            except Exception as exc:  # noqa: BLE001 - an unmeasurable old variant must not stop this run
                log.warning("compress: earlier variant %s %s not measured: %s", parent.name, version, exc)
    new_methods = "+".join(steps)
    draft = figures(new, "new", new_methods, True)
    within = draft.within(req.max_accuracy_drop)
    serving = within or req.force
    candidates.append(dataclasses.replace(draft, serving=serving))
    gpu = "measured on the CUDA provider" if gpu_problem is None else f"not measured on GPU here: {gpu_problem}"
    return Report(
        model=parent.name, parent_version=parent.version, new_version=new.version, steps=recorded,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        protocol={
            "provider": measure.CPU, "intra_op_threads": req.threads, "repeats": req.repeats, "warmup": req.warmup,
            "batch_sizes": list(req.batches), "eval_rows": data.rows, "eval_source": data.source,
            "labels": data.labels is not None, "cpu_count": os.cpu_count(), "onnxruntime": _ort_version(),
        },
        max_accuracy_drop=req.max_accuracy_drop, serving=serving, forced=req.force and not within, gpu=gpu,
        candidates=candidates,
        recommendations=recommend(candidates, req.max_accuracy_drop, gpu),
    )


def _earlier_variants(repo: ModelRepository, parent: ModelSpec) -> list[tuple[str, str]]:
    found = []
    for version in repo.versions(parent.name):
        raw = _read_meta(repo.root / parent.name / version)
        info = None if raw is None else raw.get("compression")
        if isinstance(info, dict) and info.get("parent") == {"name": parent.name, "version": parent.version}:
            steps = info.get("methods") or []
            found.append((version, "+".join(str(s.get("method")) for s in steps if isinstance(s, dict))))
    return found


def _metrics(report: Report) -> dict[str, float]:
    new = report.new
    metrics = {"top1_agreement_with_parent": round(new.top1_agreement, 6),
               "max_abs_diff_with_parent": float(f"{new.max_abs_diff:.6g}"),
               "accuracy_drop_points": new.drop_points}
    if new.accuracy is not None:
        metrics |= {"holdout_accuracy": round(new.accuracy, 6), "holdout_size": report.protocol["eval_rows"]}
    return metrics


def _copy_report(version_dir: Path, out: Path, stem: str) -> None:
    for name, suffix in (("report.json", ".json"), ("report.md", ".md")):
        shutil.copyfile(version_dir / name, out / f"{stem}{suffix}")


def _ort_version() -> str:
    import onnxruntime as ort

    return str(ort.__version__)
