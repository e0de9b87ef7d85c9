"""Shadow results: whether a shadow version agrees with the version the client got.

Agreement, per output the primary returned: integer and bool outputs equal, float outputs
within ``rtol=1e-3, atol=1e-5`` of each other, the same shape; two error results agree when
their statuses do. A shadow that errs where the primary served (or the reverse) disagrees.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from aimass.contract.messages import InferenceResult, Status

RTOL, ATOL = 1e-3, 1e-5


def agrees(primary: InferenceResult, shadow: InferenceResult) -> bool:
    """Whether ``shadow`` agrees with ``primary`` (see the module docstring)."""
    if primary.status is not Status.OK or shadow.status is not Status.OK:
        return primary.status is shadow.status
    theirs = {t.name: t for t in shadow.outputs}
    for ours in primary.outputs:
        other = theirs.get(ours.name)
        if other is None or other.shape != ours.shape:
            return False
        a, b = ours.to_numpy(), other.to_numpy()
        if a.dtype.kind == "f" or b.dtype.kind == "f":
            if not np.allclose(a.astype(np.float64), b.astype(np.float64), rtol=RTOL, atol=ATOL, equal_nan=True):
                return False
        elif not np.array_equal(a, b):
            return False
    return True


class ShadowStats:
    """Shadow outcomes per model: ``agree``, ``disagree``."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()

    def record(self, model: str, agreed: bool) -> None:
        self.counts[(model, "agree" if agreed else "disagree")] += 1

    def agreement(self, model: str) -> float | None:
        """Share of the model's shadow results that agreed; None before the first."""
        agree, disagree = self.counts[(model, "agree")], self.counts[(model, "disagree")]
        return agree / (agree + disagree) if agree + disagree else None
