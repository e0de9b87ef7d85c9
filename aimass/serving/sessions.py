"""ONNX Runtime sessions, one per model version: opened on first use, checked against the
version's ``model.json``, kept; a broken file remembered until it changes. The only module of
the serving core that imports ONNX Runtime at its top (with :mod:`aimass.serving.engine`,
which runs the sessions)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import onnxruntime as ort

from aimass.contract.messages import Reason
from aimass.serving.models import CPU, METADATA_FILE, ModelError, ModelSpec, TensorSpec, log
from aimass.settings import EngineSettings

#: ONNX Runtime's type strings for the wire dtypes of :data:`aimass.contract.messages.DTYPES`.
ONNX_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}

_LOGGED: set[str] = set()
_UNUSABLE: set[str] = set()  # providers a session was refused this process (not retried)


def _log_once(level: int, message: str) -> None:
    if message not in _LOGGED:
        _LOGGED.add(message)
        log.log(level, message)


class SessionCache:
    """One ONNX Runtime session per model version, opened on first use and kept.

    A file that fails to load or disagrees with its metadata is remembered as broken until
    it changes; other models keep serving.
    """

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._sessions: dict[tuple[str, str], tuple[tuple[int, ...], ort.InferenceSession]] = {}
        self._broken: dict[tuple[str, str], tuple[tuple[int, ...], ModelError]] = {}

    def get(self, spec: ModelSpec) -> ort.InferenceSession:
        """The session of ``spec``, opened and validated on first use.

        Raises:
            ModelError: INTERNAL_ERROR when the file cannot be loaded or disagrees with
                ``model.json`` (the message names the file); raised again, without
                reloading, until the file changes.
        """
        entry = self._sessions.get((spec.name, spec.version))
        if entry is not None and entry[0] == spec.fingerprint:
            return entry[1]
        with self._lock:
            return self._open(spec)

    def _open(self, spec: ModelSpec) -> ort.InferenceSession:
        key = (spec.name, spec.version)
        entry = self._sessions.get(key)
        if entry is not None and entry[0] == spec.fingerprint:
            return entry[1]
        broken = self._broken.get(key)
        if broken is not None and broken[0] == spec.fingerprint:
            raise broken[1]
        try:
            session = self._create(spec)
            _validate(spec, session)
        except ModelError as exc:
            self._broken[key] = (spec.fingerprint, exc)
            log.error("%s", exc.message)
            raise
        self._broken.pop(key, None)
        self._sessions[key] = (spec.fingerprint, session)
        return session

    def _options(self) -> ort.SessionOptions:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.settings.intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Spinning threads burn the cores that other slots and the JVM need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        return options

    def _providers(self, spec: ModelSpec) -> list[str]:
        if not self.settings.use_gpu:
            _log_once(logging.INFO, "ONNX Runtime: CPU execution provider (use_gpu is off)")
            return [CPU]
        available = ort.get_available_providers()
        chosen = [p for p in spec.execution_providers if p in available and p not in _UNUSABLE and p != CPU]
        if "CUDAExecutionProvider" not in available:
            _log_once(logging.INFO, "ONNX Runtime: no CUDA execution provider in this build")
        return [*chosen, CPU]

    def _create(self, spec: ModelSpec) -> ort.InferenceSession:
        path = spec.onnx_path
        providers = self._providers(spec)
        try:
            session = ort.InferenceSession(str(path), self._options(), providers=providers)
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises many unrelated types
            if providers == [CPU]:
                raise ModelError(Reason.INTERNAL_ERROR, f"{path}: ONNX Runtime cannot load it: {exc}") from None
            # A GPU provider may have failed rather than the file: retry on CPU alone.
            try:
                session = ort.InferenceSession(str(path), self._options(), providers=[CPU])
            except Exception as cpu_exc:  # noqa: BLE001
                raise ModelError(Reason.INTERNAL_ERROR, f"{path}: ONNX Runtime cannot load it: {cpu_exc}") from None
            _log_once(logging.WARNING, f"ONNX Runtime: {providers[0]} failed ({exc}); serving on CPU")
        got = session.get_providers()
        for provider in providers:
            if provider not in got:
                # Installed but unusable (no device, missing CUDA libraries): do not retry it.
                _UNUSABLE.add(provider)
                _log_once(
                    logging.WARNING,
                    f"ONNX Runtime: {provider} is installed but a session could not use it; it is not tried again",
                )
        _log_once(logging.INFO, f"ONNX Runtime: sessions run on {got[0]} (providers {', '.join(got)})")
        return session


def _validate(spec: ModelSpec, session: ort.InferenceSession) -> None:
    """Refuse an ONNX file whose inputs or declared outputs disagree with ``model.json``."""
    path = spec.onnx_path
    actual_inputs = {arg.name: arg for arg in session.get_inputs()}
    declared = [t.name for t in spec.inputs]
    if set(actual_inputs) != set(declared):
        raise ModelError(
            Reason.INTERNAL_ERROR,
            f"{path}: inputs {sorted(actual_inputs)} disagree with {METADATA_FILE} inputs {sorted(declared)}",
        )
    actual_outputs = {arg.name: arg for arg in session.get_outputs()}
    for tensor in spec.outputs:
        if tensor.name not in actual_outputs:
            raise ModelError(
                Reason.INTERNAL_ERROR,
                f"{path}: has no output {tensor.name!r} declared in {METADATA_FILE}; it has {sorted(actual_outputs)}",
            )
    for kind, tensors, actual in (("input", spec.inputs, actual_inputs), ("output", spec.outputs, actual_outputs)):
        for tensor in tensors:
            problem = _disagreement(tensor, actual[tensor.name].type, actual[tensor.name].shape)
            if problem:
                raise ModelError(Reason.INTERNAL_ERROR, f"{path}: {kind} {tensor.name!r} {problem}")


def _disagreement(tensor: TensorSpec, onnx_type: str, onnx_shape: Any) -> str | None:
    dtype = ONNX_TYPES.get(onnx_type)
    if dtype != tensor.dtype:
        return f"is {onnx_type} in the ONNX file but {tensor.dtype} in {METADATA_FILE}"
    if not isinstance(onnx_shape, list):
        return None  # rank unknown to ONNX: nothing to compare
    if len(onnx_shape) != tensor.rank:
        return f"has rank {len(onnx_shape)} in the ONNX file but {tensor.rank} in {METADATA_FILE}"
    for axis, (ours, theirs) in enumerate(zip(tensor.shape, onnx_shape, strict=True)):
        if isinstance(theirs, int) and theirs >= 0 and ours != theirs:
            # Metadata that leaves a fixed dimension open would let through requests that cannot run.
            declared = "dynamic" if ours is None else ours
            return f"dimension {axis} is {theirs} in the ONNX file but {declared} in {METADATA_FILE}"
    return None
