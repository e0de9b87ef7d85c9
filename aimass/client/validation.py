"""Checks a request must pass before it is produced: the codec's structural rules plus, when
the model repository is at hand, the model's declared inputs (names, dtypes, shapes).

What fails here fails fast, as a typed :class:`InvalidRequest`, instead of costing a round trip
through Kafka and the job for an error result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from aimass.client.errors import InvalidRequest
from aimass.codec import MAX_DIMS, MAX_INPUTS, NAME_PATTERN
from aimass.messages import DTYPES, Reason, Status, Tensor

if TYPE_CHECKING:
    from aimass.models import ModelRepository, ModelSpec


def tensors_from_numpy(inputs: Mapping[str, np.ndarray]) -> tuple[Tensor, ...]:
    """Wrap named arrays as wire tensors.

    Raises:
        InvalidRequest: A value is not an array or has a dtype the wire does not carry.
    """
    if not isinstance(inputs, Mapping):
        raise InvalidRequest(f"inputs must map input names to numpy arrays, got {type(inputs).__name__}")
    out = []
    for name, array in inputs.items():
        if not isinstance(array, np.ndarray):
            raise InvalidRequest(f"input {name!r} is a {type(array).__name__}, not a numpy array")
        try:
            out.append(Tensor.from_numpy(str(name), array))
        except ValueError as exc:
            raise InvalidRequest(f"input {name!r}: {exc}") from None
    return tuple(out)


def check_tensors(tensors: Sequence[Tensor]) -> None:
    """The rules the job's decoder applies to every request (see ``aimass/codec.py``).

    Raises:
        InvalidRequest: The first rule broken.
    """
    if not tensors:
        raise InvalidRequest("request has no inputs")
    if len(tensors) > MAX_INPUTS:
        raise InvalidRequest(f"more than {MAX_INPUTS} inputs")
    seen: set[str] = set()
    for t in tensors:
        if not t.name:
            raise InvalidRequest("an input has an empty name")
        if t.name in seen:
            raise InvalidRequest(f"duplicate input name {t.name!r}")
        seen.add(t.name)
        dtype = DTYPES.get(t.dtype)
        if dtype is None:
            raise InvalidRequest(f"input {t.name!r}: dtype {t.dtype!r} is not one of {', '.join(DTYPES)}")
        if len(t.shape) > MAX_DIMS:
            raise InvalidRequest(f"input {t.name!r} has more than {MAX_DIMS} dimensions")
        if any(d < 0 for d in t.shape):
            raise InvalidRequest(f"input {t.name!r}: negative dimension in shape {list(t.shape)}")
        needed = math.prod(t.shape) * dtype.itemsize
        if needed != len(t.data):
            raise InvalidRequest(
                f"input {t.name!r}: shape {list(t.shape)} of {t.dtype} needs {needed} bytes, got {len(t.data)}"
            )
        if t.dtype == "bool" and bytes(t.data).strip(b"\x00\x01"):
            raise InvalidRequest(f"input {t.name!r}: bool elements must be bytes 0 or 1")
    rows = {t.rows for t in tensors}
    if len(rows) > 1:
        shown = ", ".join(f"{t.name!r}={t.rows}" for t in tensors)
        raise InvalidRequest(f"inputs differ in first dimension (rows): {shown}")


def check_names(model: str, version: str | None) -> None:
    """Model name and version must be safe path components.

    Raises:
        InvalidRequest: Either is malformed.
    """
    for what, value in (("model name", model), ("version", version)):
        if value is not None and not (isinstance(value, str) and NAME_PATTERN.fullmatch(value)):
            raise InvalidRequest(f"{what} {value!r} must match {NAME_PATTERN.pattern}")


def resolve(repo: ModelRepository, model: str, version: str | None) -> ModelSpec:
    """The model's spec from the repository.

    Raises:
        InvalidRequest: UNKNOWN_MODEL when it does not exist, INVALID_INPUT otherwise.
    """
    from aimass.models import ModelError

    try:
        return repo.resolve(model, version)
    except ModelError as exc:
        status = Status.UNKNOWN_MODEL if exc.reason is Reason.UNKNOWN_MODEL else Status.INVALID_INPUT
        raise InvalidRequest(exc.message, status) from None


def known_spec(repo: ModelRepository, model: str, version: str | None) -> ModelSpec | None:
    """The model's spec when the local folder has it; None when it does not (the version may be
    deployed through the control topic, or be an alias: the job knows, the folder may not).

    Raises:
        InvalidRequest: INVALID_INPUT for a version whose metadata is broken.
    """
    try:
        return resolve(repo, model, version)
    except InvalidRequest as exc:
        if exc.status is Status.UNKNOWN_MODEL:
            return None
        raise


def check_against_spec(spec: ModelSpec, tensors: Sequence[Tensor]) -> None:
    """Inputs must be exactly the model's declared inputs, with their dtypes and fixed dims.

    Raises:
        InvalidRequest: Naming the first input that disagrees.
    """
    given = {t.name: t for t in tensors}
    missing = [n for n in spec.input_names if n not in given]
    extra = [n for n in given if n not in spec.input_names]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if extra:
            parts.append(f"unexpected {extra}")
        raise InvalidRequest(f"model {spec.name!r} {spec.version} takes inputs {list(spec.input_names)}: "
                             + "; ".join(parts))
    for declared in spec.inputs:
        t = given[declared.name]
        if t.dtype != declared.dtype:
            raise InvalidRequest(f"input {t.name!r} is {t.dtype}; model {spec.name!r} wants {declared.dtype}")
        wanted = ["rows" if d is None else d for d in declared.shape]
        if len(t.shape) != declared.rank or any(
            d is not None and d != got for d, got in zip(declared.shape, t.shape, strict=False)
        ):
            raise InvalidRequest(f"input {t.name!r} has shape {list(t.shape)}; model {spec.name!r} wants {wanted}")
