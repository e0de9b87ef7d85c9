"""Typed messages of the data contract (see ``schemas/*.avsc``).

Plain frozen dataclasses with no Flink or Kafka import: the job, the client, the gateway and
the tests all speak these, and :mod:`aimass.contract.codec` turns them into bytes and back.
"""

from __future__ import annotations

import enum
import math
import time
from dataclasses import dataclass, field

import numpy as np

from aimass.contract.limits import MAX_ERROR_CHARS

#: Wire dtype name -> numpy dtype (always little-endian on the wire).
DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
    "int64": np.dtype("<i8"),
    "int32": np.dtype("<i4"),
    "uint8": np.dtype("u1"),
    "bool": np.dtype("?"),
}


def now_ms() -> int:
    """Wall-clock epoch milliseconds: the clock of ``created_at_ms``, deadlines and results."""
    return int(time.time() * 1000)


def clip(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """``text`` cut to at most ``limit`` characters, marked with ``...`` when cut."""
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


class Status(enum.StrEnum):
    """Result status (``Status`` enum in ``result.avsc``)."""

    OK = "OK"
    INVALID_INPUT = "INVALID_INPUT"
    UNKNOWN_MODEL = "UNKNOWN_MODEL"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    OVERLOADED = "OVERLOADED"
    """Refused at admission (too many requests waiting): send it again later (no dead letter)."""


class Reason(enum.StrEnum):
    """Dead-letter reason code (``Reason`` enum in ``dead_letter.avsc``)."""

    UNDECODABLE = "UNDECODABLE"
    WRONG_SCHEMA = "WRONG_SCHEMA"
    INVALID_INPUT = "INVALID_INPUT"
    UNKNOWN_MODEL = "UNKNOWN_MODEL"
    OVERSIZED = "OVERSIZED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    INTERNAL_ERROR = "INTERNAL_ERROR"

    def status(self) -> Status:
        """The result status a client sees for a request rejected for this reason."""
        return _REASON_STATUS[self]


_REASON_STATUS = {
    Reason.UNDECODABLE: Status.INVALID_INPUT,
    Reason.WRONG_SCHEMA: Status.INVALID_INPUT,
    Reason.INVALID_INPUT: Status.INVALID_INPUT,
    Reason.OVERSIZED: Status.INVALID_INPUT,
    Reason.UNKNOWN_MODEL: Status.UNKNOWN_MODEL,
    Reason.DEADLINE_EXCEEDED: Status.DEADLINE_EXCEEDED,
    Reason.INTERNAL_ERROR: Status.INTERNAL_ERROR,
}


@dataclass(frozen=True, slots=True)
class Tensor:
    """A named tensor as carried on the wire: dtype name, shape and raw little-endian bytes."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    data: bytes

    @classmethod
    def from_numpy(cls, name: str, array: np.ndarray) -> Tensor:
        """Wrap a numpy array (converted to little-endian C order if needed)."""
        kind = _dtype_name(array.dtype)
        wire = np.ascontiguousarray(array, dtype=DTYPES[kind])
        return cls(name, kind, tuple(int(d) for d in wire.shape), wire.tobytes())

    def to_numpy(self) -> np.ndarray:
        """View the bytes as a numpy array (no copy). Raises ValueError if they disagree."""
        dtype = DTYPES.get(self.dtype)
        if dtype is None:
            raise ValueError(f"tensor {self.name!r}: unsupported dtype {self.dtype!r}")
        if min(self.shape, default=0) < 0:
            raise ValueError(f"tensor {self.name!r}: negative dimension in shape {self.shape}")
        count = math.prod(self.shape)  # exact (no int64 wrap-around); 1 for a scalar
        if count * dtype.itemsize != len(self.data):
            raise ValueError(
                f"tensor {self.name!r}: shape {list(self.shape)} of {self.dtype} needs "
                f"{count * dtype.itemsize} bytes, got {len(self.data)}"
            )
        return np.frombuffer(self.data, dtype=dtype).reshape(self.shape)

    @property
    def rows(self) -> int:
        """First dimension (row count); 1 for a scalar."""
        return self.shape[0] if self.shape else 1


def _dtype_name(dtype: np.dtype) -> str:
    for name, wire in DTYPES.items():
        if dtype.kind == wire.kind and dtype.itemsize == wire.itemsize:
            return name
    raise ValueError(f"unsupported dtype {dtype}; use one of {', '.join(DTYPES)}")


@dataclass(frozen=True, slots=True)
class InferenceRequest:
    """A request to run ``model`` (optionally pinned to ``version``) on ``inputs``."""

    request_id: str
    model: str
    inputs: tuple[Tensor, ...]
    created_at_ms: int
    version: str | None = None
    deadline_ms: int | None = None
    priority: int = 0

    @property
    def rows(self) -> int:
        """Row count of the request (first dimension of its inputs)."""
        return self.inputs[0].rows if self.inputs else 0


@dataclass(frozen=True, slots=True)
class Timings:
    """Where the time went, in milliseconds."""

    queued_ms: float = 0.0
    batch_size: int = 0
    inference_ms: float = 0.0
    end_to_end_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class Route:
    """How the job chose the version that served a request (``Route`` in ``result.avsc``)."""

    rule: str
    """``default``, ``pinned``, ``alias``, ``split``, or ``shadow`` (a shadow result)."""
    alias: str | None = None
    bucket: int = -1
    """The split bucket (0..9999) when ``rule`` is ``split``."""
    primary_version: str | None = None
    """Shadow results: the version whose result the client got."""
    agrees: bool | None = None
    """Shadow results: whether the outputs agree with the primary's."""


@dataclass(frozen=True, slots=True)
class StepTiming:
    """One graph step that ran for a request (``StepTiming`` in ``result.avsc``)."""

    step: str
    """The step's path in the graph, e.g. ``vote/digits_v3``."""
    model: str
    version: str | None
    status: str
    """``OK`` or the step's error status."""
    batch_size: int = 0
    inference_ms: float = 0.0
    finished_ms: float = 0.0
    """From the graph's start on the batch to this step's end."""


@dataclass(frozen=True, slots=True)
class GraphOutcome:
    """How a request's graph ran (``GraphOutcome`` in ``result.avsc``, docs/GRAPHS.md)."""

    partial: bool = False
    missing: tuple[str, ...] = ()
    steps: tuple[StepTiming, ...] = ()


@dataclass(frozen=True, slots=True)
class InferenceResult:
    """The answer to one request: outputs when ``status`` is OK, else an error message."""

    request_id: str | None
    model: str
    status: Status
    completed_at_ms: int
    version: str | None = None
    outputs: tuple[Tensor, ...] = ()
    error: str | None = None
    timings: Timings = field(default_factory=Timings)
    route: Route | None = None
    graph: GraphOutcome | None = None
    """Set when the request named a graph."""

    def output(self, name: str) -> np.ndarray:
        """The named output as a numpy array."""
        for tensor in self.outputs:
            if tensor.name == name:
                return tensor.to_numpy()
        raise KeyError(f"result has no output {name!r}; it has {[t.name for t in self.outputs]}")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record the job could not serve, with where it came from and why."""

    original: bytes
    topic: str
    partition: int
    offset: int
    reason: Reason
    message: str
    at_ms: int
    request_id: str | None = None
