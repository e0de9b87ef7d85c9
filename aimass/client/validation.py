"""Checks a request must pass before it is produced: the structural rules of
:mod:`aimass.contract.rules` plus, when the model's metadata is at hand, the model-fit rules of
:mod:`aimass.serving.fit` (the very functions the job's codec and engine apply).

What fails here fails fast, as a typed :class:`InvalidRequest`, instead of costing a round trip
through Kafka and the job for an error result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from aimass.client.errors import InvalidRequest
from aimass.contract.messages import Reason, Status, Tensor
from aimass.contract.rules import inputs_refusal, names_refusal
from aimass.serving.fit import input_problem

if TYPE_CHECKING:
    from aimass.serving.models import ModelRepository, ModelSpec


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
    """The structural rules the job's decoder applies to every request
    (:func:`aimass.contract.rules.inputs_refusal`).

    Raises:
        InvalidRequest: The first rule broken.
    """
    refusal = inputs_refusal(tensors)
    if refusal is not None:
        raise InvalidRequest(refusal.message)


def check_names(model: str, version: str | None) -> None:
    """Model name and version must be safe path components
    (:func:`aimass.contract.rules.names_refusal`).

    Raises:
        InvalidRequest: Either is malformed.
    """
    refusal = names_refusal(model, version)
    if refusal is not None:
        raise InvalidRequest(refusal.message)


def resolve(repo: ModelRepository, model: str, version: str | None) -> ModelSpec:
    """The model's spec from the repository.

    Raises:
        InvalidRequest: UNKNOWN_MODEL when it does not exist, INVALID_INPUT otherwise.
    """
    from aimass.serving.models import ModelError

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
    """Inputs must fit the model version: the engine's rule (:func:`aimass.serving.fit.input_problem`).

    Raises:
        InvalidRequest: Naming the first input that disagrees.
    """
    problem = input_problem(spec, tensors)
    if problem is not None:
        raise InvalidRequest(problem)
