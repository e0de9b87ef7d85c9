"""The requests every system is served: the same model inputs, encoded once with the project codec.

Inputs are fixed by the seed: the digits model gets the rows of its held-out set
(:func:`aimass.tools.demo.load_holdout`) in a seeded order, the heavy model seeded standard-normal
rows. Request ids are uuid-shaped and derived from (seed, phase, index), so a run can be
repeated exactly and two phases never share an id.

Encoding hundreds of thousands of requests inside the load driver would steal CPU from the
system under test on a two-core machine, so each input row is encoded once into a template
with a placeholder id, and a request's bytes are the template with its id written over the
placeholder. The bytes are exactly what :meth:`aimass.contract.codec.Codec.encode_request` writes for
that id (``tests/unit/test_bench_workload.py`` checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aimass.contract.codec import HEADER_SIZE, Codec
from aimass.serving.models import ModelRepository
from aimass.tools.demo import load_holdout
from aimass.tools.traffic import make_request

ID_LENGTH = 36
_PLACEHOLDER = "0" * ID_LENGTH
#: Distinct input rows per model; requests cycle through them.
POOL_SIZE = 1024


def request_id(seed: int, phase: int, index: int) -> str:
    """A uuid-shaped id, unique per (seed, phase, index)."""
    return f"{seed & 0xFFFFFFFF:08x}-{phase & 0xFFFF:04x}-4000-8000-{index:012x}"


def model_inputs(model: str, models_dir: Path, seed: int, rows: int = POOL_SIZE) -> dict[str, np.ndarray]:
    """``rows`` input rows of ``model`` (named like its inputs), fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    if model == "digits":
        pixels, _ = load_holdout(models_dir)
        order = rng.permutation(len(pixels))
        return {"pixels": pixels[np.resize(order, rows)]}
    spec = ModelRepository(models_dir).resolve(model)
    out: dict[str, np.ndarray] = {}
    for tensor in spec.inputs:
        if any(d is None for d in tensor.shape[1:]):
            raise ValueError(f"model {model!r} input {tensor.name!r} has a dynamic row shape: give its inputs")
        shape = (rows, *(int(d) for d in tensor.shape[1:] if d is not None))
        out[tensor.name] = rng.standard_normal(shape).astype(tensor.dtype)
    return out


@dataclass(frozen=True)
class Workload:
    """Encoded one-row requests of one model, ready to be stamped with ids."""

    model: str
    seed: int
    templates: tuple[bytes, ...]

    @classmethod
    def build(cls, codec: Codec, model: str, models_dir: Path, seed: int, pool: int = POOL_SIZE) -> Workload:
        """Encode ``pool`` one-row requests of ``model`` with a placeholder id."""
        return cls.from_inputs(codec, model, model_inputs(model, models_dir, seed, pool), seed)

    @classmethod
    def from_inputs(cls, codec: Codec, model: str, inputs: dict[str, np.ndarray], seed: int) -> Workload:
        """One template per row of ``inputs`` (named arrays with the same number of rows)."""
        pool = len(next(iter(inputs.values())))
        templates = []
        for i in range(pool):
            request = make_request(model, {name: rows[i : i + 1] for name, rows in inputs.items()},
                                   request_id=_PLACEHOLDER)
            data = codec.encode_request(request)
            if data[HEADER_SIZE + 1 : HEADER_SIZE + 1 + ID_LENGTH] != _PLACEHOLDER.encode():
                raise AssertionError("request_id is not where the template expects it")
            templates.append(data)
        return cls(model, seed, tuple(templates))

    def payload(self, rid: str, index: int) -> bytes:
        """The request bytes of id ``rid`` on input row ``index`` (modulo the pool)."""
        template = self.templates[index % len(self.templates)]
        start = HEADER_SIZE + 1  # the one-byte zig-zag length of a 36-character string comes first
        return template[:start] + rid.encode() + template[start + ID_LENGTH :]

    def batch(self, phase: int, count: int) -> tuple[list[str], list[bytes]]:
        """``count`` ids of ``phase`` and their request bytes."""
        ids = [request_id(self.seed, phase, i) for i in range(count)]
        return ids, [self.payload(rid, i) for i, rid in enumerate(ids)]
