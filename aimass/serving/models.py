"""The model repository: model folders, their metadata, versions and their order (ONNX Runtime
sessions are :mod:`aimass.serving.sessions`).

Layout: ``<root>/<name>/<version>/model.onnx`` plus ``model.json``, the metadata::

    {"name": "digits", "version": "1",
     "inputs":  [{"name": "pixels", "dtype": "float32", "shape": [-1, 64]}],
     "outputs": [{"name": "label", "dtype": "int64", "shape": [null]}, ...],
     "max_batch_size": 32, "max_delay_ms": 20,
     "execution_providers": ["CUDAExecutionProvider", "CPUExecutionProvider"],
     "parent": null, "description": "...", "labels": ["0", ...], "metrics": {...},
     "serving": true}

The first dimension of every tensor is the batch (row) dimension and is dynamic (-1 or null).
``"serving": false`` keeps a version out of "newest": a request that names no version is served
by the newest version that does not say so, while a request pinning it still gets it (this is
how ``aimass compress`` parks a variant that lost too much accuracy).
Directories whose names start with a dot (work in progress, held-out data) are not models.
A version is listed once both of its files exist; deploy one by building it in a hidden
directory next to its final place and renaming it into place.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

from aimass.contract.limits import NAME_PATTERN
from aimass.contract.messages import DTYPES, Reason

log = logging.getLogger("aimass")

METADATA_FILE = "model.json"
MODEL_FILE = "model.onnx"
CPU = "CPUExecutionProvider"
DEFAULT_PROVIDERS = ("CUDAExecutionProvider", CPU)



class ModelError(Exception):
    """A model cannot serve: ``reason`` says why in dead-letter terms, ``message`` in words."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """A declared input or output: ``None`` in ``shape`` is a dynamic dimension."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]

    @property
    def rank(self) -> int:
        """Number of dimensions, the batch dimension included."""
        return len(self.shape)

    @classmethod
    def parse(cls, raw: Any, where: str) -> TensorSpec:
        """Read one ``{"name", "dtype", "shape"}`` entry of ``model.json``."""
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: expected an object with name, dtype and shape")
        name, dtype, shape = raw.get("name"), raw.get("dtype"), raw.get("shape")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}: 'name' must be a non-empty string")
        if dtype not in DTYPES:
            raise ValueError(f"{where} ({name}): dtype {dtype!r} is not one of {', '.join(DTYPES)}")
        if not isinstance(shape, list) or not shape:
            raise ValueError(f"{where} ({name}): 'shape' must be a list starting with the batch dimension")
        dims: list[int | None] = []
        for dim in shape:
            if dim is None or dim == -1:
                dims.append(None)
            elif isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0:
                dims.append(dim)
            else:
                raise ValueError(f"{where} ({name}): dimension {dim!r} must be a non-negative int, -1 or null")
        if dims[0] is not None:
            raise ValueError(f"{where} ({name}): the first (batch) dimension must be -1 or null, got {dims[0]}")
        return cls(name, dtype, tuple(dims))


@dataclass(frozen=True)
class ModelSpec:
    """One model version as described by its ``model.json``."""

    name: str
    version: str
    path: Path
    """The version directory."""
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch_size: int | None = None
    """Most rows per ONNX Runtime call; ``None`` falls back to the job setting."""
    max_delay_ms: int | None = None
    """Longest wait for a batch to fill; ``None`` falls back to the job setting."""
    execution_providers: tuple[str, ...] = DEFAULT_PROVIDERS
    """Providers in order of preference; the CPU provider is always the last resort."""
    parent: str | None = None
    """The model this one was derived from (a compressed variant names its original)."""
    description: str | None = None
    labels: tuple[str, ...] | None = None
    """Class labels, index-aligned with a classifier's outputs."""
    metrics: Mapping[str, float] = field(default_factory=dict, hash=False, compare=False)
    serving: bool = True
    """Whether a request that names no version may get this one (``"serving": false`` opts out)."""
    fingerprint: tuple[int, ...] = ()
    """Size, mtime and inode of both files when loaded: a changed file is a new model."""
    graph: Mapping[str, Any] | None = field(default=None, hash=False, compare=False)
    """A graph's checked definition (docs/GRAPHS.md): this version runs other models, no file of its own."""

    @property
    def onnx_path(self) -> Path:
        """The ONNX file."""
        return self.path / MODEL_FILE

    @cached_property
    def input_names(self) -> tuple[str, ...]:
        """Input names in declared order."""
        return tuple(t.name for t in self.inputs)

    @cached_property
    def output_names(self) -> tuple[str, ...]:
        """Output names in declared order."""
        return tuple(t.name for t in self.outputs)

    @cached_property
    def fixed_row_shapes(self) -> bool:
        """Whether every input fixes all its dimensions but the batch one (rows then always stack)."""
        return all(d is not None for t in self.inputs for d in t.shape[1:])

    @classmethod
    def load(cls, directory: Path) -> ModelSpec:
        """Parse ``directory/model.json``; the directory's names are the model name and version.

        Raises:
            ModelError: UNKNOWN_MODEL when a file is missing, INTERNAL_ERROR when the
                metadata is unreadable or invalid (the message names the file).
        """
        directory = Path(directory)
        meta_path = directory / METADATA_FILE
        fingerprint = _stamp(directory)
        if fingerprint is None:
            raise ModelError(Reason.UNKNOWN_MODEL, f"{directory} lacks {METADATA_FILE} or {MODEL_FILE}")
        try:
            raw = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(Reason.INTERNAL_ERROR, f"{meta_path}: unreadable model metadata: {exc}") from None
        try:
            return cls._from_json(raw, directory, fingerprint)
        except (ValueError, TypeError) as exc:
            raise ModelError(Reason.INTERNAL_ERROR, f"{meta_path}: {exc}") from None

    @classmethod
    def _from_json(cls, raw: Any, directory: Path, fingerprint: tuple[int, ...]) -> ModelSpec:
        if not isinstance(raw, dict):
            raise ValueError("expected a JSON object")
        name, version = directory.parent.name, directory.name
        for key, expected in (("name", name), ("version", version)):
            if key in raw and str(raw[key]) != expected:
                raise ValueError(f"says {key} {raw[key]!r} but lies in directory {expected!r}")
        specs: dict[str, tuple[TensorSpec, ...]] = {}
        for key in ("inputs", "outputs"):
            entries = raw.get(key)
            if not isinstance(entries, list) or not entries:
                raise ValueError(f"{key!r} must be a non-empty list")
            specs[key] = tuple(TensorSpec.parse(entry, f"{key}[{i}]") for i, entry in enumerate(entries))
            names = [spec.name for spec in specs[key]]
            if len(set(names)) != len(names):
                raise ValueError(f"{key!r} repeats a name: {names}")
        providers = raw.get("execution_providers", list(DEFAULT_PROVIDERS))
        if not isinstance(providers, list) or not all(isinstance(p, str) for p in providers):
            raise ValueError("'execution_providers' must be a list of provider names")
        labels = raw.get("labels")
        if labels is not None and not isinstance(labels, list):
            raise ValueError("'labels' must be a list")
        serving = raw.get("serving", True)
        if not isinstance(serving, bool):
            raise ValueError(f"'serving' must be true or false, got {serving!r}")
        metrics = raw.get("metrics", {})
        if not isinstance(metrics, dict) or not all(isinstance(v, int | float) for v in metrics.values()):
            raise ValueError("'metrics' must map names to numbers")
        return cls(
            name=name,
            version=version,
            path=directory,
            inputs=specs["inputs"],
            outputs=specs["outputs"],
            max_batch_size=_optional_int(raw, "max_batch_size", minimum=1),
            max_delay_ms=_optional_int(raw, "max_delay_ms", minimum=0),
            execution_providers=tuple(providers),
            parent=None if raw.get("parent") is None else str(raw["parent"]),
            description=None if raw.get("description") is None else str(raw["description"]),
            labels=None if labels is None else tuple(str(label) for label in labels),
            metrics=MappingProxyType({str(k): float(v) for k, v in metrics.items()}),
            serving=serving,
            fingerprint=fingerprint,
            graph=raw["graph"] if isinstance(raw.get("graph"), dict) else None,
        )


def _optional_int(raw: dict[str, Any], key: str, minimum: int) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{key!r} must be an integer >= {minimum}, got {value!r}")
    return value


def _stamp(directory: str | os.PathLike[str]) -> tuple[int, ...] | None:
    """Size, mtime and inode of both files of a version, or None while one is missing."""
    stamp: list[int] = []
    for file in (METADATA_FILE, MODEL_FILE):
        try:
            st = os.stat(os.path.join(directory, file))
        except (FileNotFoundError, NotADirectoryError):
            return None
        stamp += (st.st_size, st.st_mtime_ns, st.st_ino)
    return tuple(stamp)


_CHUNKS = re.compile(r"([0-9]+)")


def version_key(version: str) -> tuple[tuple[tuple[int, int, str], ...], str]:
    """Sort key of versions, oldest first: digit runs compare as numbers (``2 < 10``,
    ``1.9 < 1.10``), everything else as text."""
    chunks = tuple((0, int(c), "") if c.isdigit() else (1, 0, c) for c in _CHUNKS.split(version) if c)
    return chunks, version


class ModelRepository:
    """The models under ``root``, re-scanned at most every ``rescan_interval_s`` seconds.

    A scan lists the directories and stats two files per version, so it is cheap; between
    scans :meth:`resolve` is a dictionary look-up. :meth:`refresh` scans at once.
    """

    def __init__(self, root: Path, rescan_interval_s: float = 1.0) -> None:
        self.root = Path(root)
        self.rescan_interval_s = rescan_interval_s
        self._real_root = self.root.resolve()
        self._lock = threading.Lock()
        self._scanned_at = float("-inf")
        self._versions: dict[str, tuple[str, ...]] = {}
        self._stamps: dict[tuple[str, str], tuple[int, ...]] = {}
        self._specs: dict[tuple[str, str], ModelSpec | ModelError] = {}
        self._resolved: dict[tuple[str, str | None], ModelSpec] = {}

    def names(self) -> list[str]:
        """Models with at least one complete version, sorted."""
        self._maybe_rescan()
        return sorted(self._versions)

    def versions(self, name: str) -> list[str]:
        """Complete versions of ``name``, newest last (empty for an unknown model)."""
        self._maybe_rescan()
        return list(self._versions.get(name, ()))

    def refresh(self) -> None:
        """Re-scan now and forget every parsed metadata file."""
        with self._lock:
            self._specs = {}
            self._scan()

    def resolve(self, name: str, version: str | None = None) -> ModelSpec:
        """The spec of ``name`` at ``version``, or at its newest serving version when ``version`` is None.

        The newest serving version is the newest whose ``model.json`` does not say
        ``"serving": false``; a version with invalid metadata stops the search and is reported.

        Raises:
            ModelError: INVALID_INPUT for a malformed name or version or one that leads out
                of the repository; UNKNOWN_MODEL when it does not exist (the message lists
                what does); INTERNAL_ERROR when its metadata is invalid.
        """
        self._maybe_rescan()
        spec = self._resolved.get((name, version))
        return spec if spec is not None else self._resolve_slow(name, version)

    def _resolve_slow(self, name: str, version: str | None) -> ModelSpec:
        for what, value in (("model name", name), ("version", version)):
            if value is not None and not (isinstance(value, str) and NAME_PATTERN.fullmatch(value)):
                raise ModelError(
                    Reason.INVALID_INPUT,
                    f"{what} {value!r} is not valid: use 1-64 of A-Z a-z 0-9 _ . - , not starting with a dot",
                )
        relative = Path(name) if version is None else Path(name, version)
        if not (self.root / relative).resolve().is_relative_to(self._real_root):
            raise ModelError(Reason.INVALID_INPUT, f"model path {str(relative)!r} leads out of the model repository")
        versions = self._versions.get(name)
        if not versions:
            known = ", ".join(sorted(self._versions)) or "none"
            raise ModelError(Reason.UNKNOWN_MODEL, f"unknown model {name!r} in {self.root}; models: {known}")
        if version is None:
            for candidate in reversed(versions):
                spec = self._load(name, candidate)
                if isinstance(spec, ModelError) or spec.serving:
                    break
            else:
                raise ModelError(
                    Reason.UNKNOWN_MODEL,
                    f"model {name!r} has no serving version: {', '.join(versions)} all say \"serving\": false",
                )
        elif version in versions:
            spec = self._load(name, version)
        else:
            raise ModelError(
                Reason.UNKNOWN_MODEL, f"model {name!r} has no version {version!r}; versions: {', '.join(versions)}"
            )
        if isinstance(spec, ModelError):
            raise spec
        self._resolved[(name, version)] = spec
        return spec

    def _load(self, name: str, version: str) -> ModelSpec | ModelError:
        spec = self._specs.get((name, version))
        if spec is None:
            try:
                directory = self.root / name / version
                for file in (METADATA_FILE, MODEL_FILE):
                    # A file symlinked out of the repository is refused like a directory is.
                    if not (directory / file).resolve().is_relative_to(self._real_root):
                        raise ModelError(
                            Reason.INTERNAL_ERROR,
                            f"{directory / file} leads out of the model repository {self.root}: refused",
                        )
                spec = ModelSpec.load(directory)
            except ModelError as exc:
                spec = exc
            self._specs[(name, version)] = spec
        return spec

    def _maybe_rescan(self) -> None:
        if time.monotonic() - self._scanned_at >= self.rescan_interval_s:
            with self._lock:
                self._scan()

    def _scan(self) -> None:
        versions: dict[str, tuple[str, ...]] = {}
        stamps: dict[tuple[str, str], tuple[int, ...]] = {}
        for model in self._subdirs(self.root):
            found = []
            for version in self._subdirs(model.path):
                stamp = _stamp(version.path)
                if stamp is not None:  # else still being written
                    found.append(version.name)
                    stamps[(model.name, version.name)] = stamp
            if found:
                versions[model.name] = tuple(sorted(found, key=version_key))
        if stamps != self._stamps:
            self._specs = {key: spec for key, spec in self._specs.items() if stamps.get(key) == self._stamps.get(key)}
            self._resolved = {}
        self._versions, self._stamps = versions, stamps
        self._scanned_at = time.monotonic()

    def _subdirs(self, path: str | os.PathLike[str]) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(path) as entries:
                found = [e for e in entries if NAME_PATTERN.fullmatch(e.name) and e.is_dir()]
        except (FileNotFoundError, NotADirectoryError):
            return []
        # A symlink may lead out of the repository: such an entry is not served.
        return [e for e in found if not e.is_symlink() or Path(e.path).resolve().is_relative_to(self._real_root)]
