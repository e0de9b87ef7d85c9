"""The oracle of a fault campaign: what was sent against what was read back. Pure functions.

Given what every sent request should produce (an :class:`Expectation`) and the results read
from the results topic, :func:`judge` counts the requests with no result (lost), the requests
with more than one (duplicates, split into identical and conflicting ones), and the results
whose status or outputs are wrong. Records without a readable request id (garbage, another
schema) produce only a dead letter: those are matched by a digest of their original bytes.

The verdict depends on the delivery mode: exactly-once allows no duplicate at all;
at-least-once allows duplicates as long as they carry the same answer (a compacted results
topic keyed by request id then holds one answer per request either way).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from aimass.contract.messages import DeadLetter, InferenceResult, Reason, Status

Mode = Literal["exactly-once", "at-least-once"]


def digest(original: bytes) -> str:
    """Key of a record by its bytes (how a dead letter is matched to what was sent)."""
    return hashlib.sha256(bytes(original)).hexdigest()


@dataclass(frozen=True)
class Expectation:
    """What one request should be answered with."""

    status: Status | None
    """None: any status (a fuzzed record, see ``dead_if_error`` of :func:`judge`)."""
    outputs: Mapping[str, np.ndarray] | None = field(default=None, compare=False)
    """Expected output arrays by name (compared with a tolerance); None: not checked."""


@dataclass(frozen=True)
class Verdict:
    """The oracle's counts for one campaign (lists hold request ids, or digests for dead letters)."""

    mode: Mode
    expected: int
    answered: int
    missing: tuple[str, ...]
    duplicates: Mapping[str, int]
    """Request id -> number of results read, for ids read more than once."""
    identical_duplicates: int
    """Requests whose repeated results all carry the same answer (status, version, outputs)."""
    conflicting_duplicates: int
    """Requests whose repeated results disagree: wrong in any mode."""
    mismatched: Mapping[str, str]
    """Request id -> what is wrong with its (first) result."""
    dead_letters_expected: int
    dead_letters_missing: tuple[str, ...]
    dead_letters_duplicated: int
    dead_letters_wrong_reason: Mapping[str, str]
    unexpected: tuple[str, ...] = ()
    """Ids of the campaign's own records that got a result although they were owed none."""

    @property
    def lost(self) -> int:
        """Requests and unanswerable records that produced nothing at all."""
        return len(self.missing) + len(self.dead_letters_missing)

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing wrong, and no duplicate the mode does not allow."""
        if (self.lost or self.mismatched or self.conflicting_duplicates or self.dead_letters_wrong_reason
                or self.unexpected):
            return False
        if self.mode == "exactly-once":
            return not self.duplicates and not self.dead_letters_duplicated
        return True

    def problems(self) -> list[str]:
        """What is wrong, in words (empty when :attr:`ok`)."""
        out = []
        if self.missing:
            out.append(f"{len(self.missing)} of {self.expected} requests got no result, e.g. {list(self.missing[:3])}")
        if self.dead_letters_missing:
            out.append(
                f"{len(self.dead_letters_missing)} of {self.dead_letters_expected} bad records got no dead letter"
            )
        if self.mismatched:
            sample = dict(list(self.mismatched.items())[:3])
            out.append(f"{len(self.mismatched)} results are wrong, e.g. {sample}")
        if self.dead_letters_wrong_reason:
            sample = dict(list(self.dead_letters_wrong_reason.items())[:3])
            out.append(f"{len(self.dead_letters_wrong_reason)} dead letters carry the wrong reason, e.g. {sample}")
        if self.conflicting_duplicates:
            out.append(f"{self.conflicting_duplicates} requests got results that disagree")
        if self.unexpected:
            ids = [rid[:60] for rid in self.unexpected[:3]]
            out.append(f"{len(self.unexpected)} records owed only a dead letter got a result, e.g. {ids}")
        if self.mode == "exactly-once" and self.duplicates:
            out.append(f"{len(self.duplicates)} requests got more than one result in exactly-once mode")
        if self.mode == "exactly-once" and self.dead_letters_duplicated:
            out.append(f"{self.dead_letters_duplicated} bad records got more than one dead letter in exactly-once mode")
        return out

    def summary(self) -> dict[str, Any]:
        """Counts only (for the JSON report)."""
        return {
            "mode": self.mode,
            "ok": self.ok,
            "expected": self.expected,
            "answered": self.answered,
            "lost": self.lost,
            "missing_results": len(self.missing),
            "duplicated_requests": len(self.duplicates),
            "extra_results": sum(c - 1 for c in self.duplicates.values()),
            "identical_duplicates": self.identical_duplicates,
            "conflicting_duplicates": self.conflicting_duplicates,
            "mismatched": len(self.mismatched),
            "dead_letters_expected": self.dead_letters_expected,
            "dead_letters_missing": len(self.dead_letters_missing),
            "dead_letters_duplicated": self.dead_letters_duplicated,
            "dead_letters_wrong_reason": len(self.dead_letters_wrong_reason),
            "unexpected_results": len(self.unexpected),
            "problems": self.problems(),
        }


def judge(
    mode: Mode,
    expected: Mapping[str, Expectation],
    results: Iterable[InferenceResult],
    dead_expected: Mapping[str, Reason | None] | None = None,
    dead_letters: Iterable[DeadLetter] = (),
    rtol: float = 1e-5,
    atol: float = 1e-6,
    own_prefix: str | None = None,
    dead_if_error: Mapping[str, str] | None = None,
) -> Verdict:
    """Compare what was read with what was sent.

    Args:
        mode: The delivery mode the job ran in.
        expected: Request id -> expected answer, for every request that carries a readable id.
        results: Every result read (in order); results of ids not in ``expected`` are ignored
            (other traffic on a shared topic).
        dead_expected: :func:`digest` of a bad record's bytes -> the reason it must be
            dead-lettered with (None: any reason); dead letters of other records are ignored.
        dead_letters: Every dead letter read.
        rtol: Relative tolerance of float outputs.
        atol: Absolute tolerance of float outputs.
        own_prefix: Request ids of the caller's own records start with this: a result for one of
            them that is not in ``expected`` is *unexpected* (a record owed no result got one).
        dead_if_error: Request id -> :func:`digest` of its record, for records whose answer is
            not known beforehand (``expected`` says any status): a result that is not ``ok`` owes
            a dead letter of those bytes with the matching reason, an ``ok`` one owes none.
    """
    dead_expected = dict(dead_expected or {})
    dead_if_error = dead_if_error or {}
    first: dict[str, InferenceResult] = {}
    counts: Counter[str] = Counter()
    conflicting: set[str] = set()
    unexpected: set[str] = set()
    for result in results:
        rid = result.request_id
        if rid is None or rid not in expected:
            if rid is not None and own_prefix is not None and rid.startswith(own_prefix):
                unexpected.add(rid)
            continue
        counts[rid] += 1
        if rid not in first:
            first[rid] = result
        elif _content(result) != _content(first[rid]):
            conflicting.add(rid)
    duplicates = {rid: n for rid, n in counts.items() if n > 1}
    mismatched = {}
    for rid, result in first.items():
        why = _mismatch(expected[rid], result, rtol, atol)
        if why is not None:
            mismatched[rid] = why
    owed_none: dict[str, str] = {}
    """Digest -> request id of fuzzed records answered ``ok``: they owe no dead letter."""
    status_of: dict[str, Status] = {}
    for rid, key in dead_if_error.items():
        answer = first.get(rid)
        if answer is None:
            continue  # already missing
        if answer.status is Status.OK:
            owed_none[key] = rid
        else:
            dead_expected[key] = None
            status_of[key] = answer.status
    dead_counts: Counter[str] = Counter()
    wrong_reason: dict[str, str] = {}
    for dl in dead_letters:
        key = digest(dl.original)
        if key in owed_none:
            mismatched.setdefault(owed_none[key], f"an ok result and a dead letter ({dl.reason.value})")
            continue
        if key not in dead_expected:
            continue
        dead_counts[key] += 1
        want = dead_expected[key]
        if key in wrong_reason:
            continue
        if want is not None and dl.reason is not want:
            wrong_reason[key] = f"reason {dl.reason.value}, expected {want.value}: {dl.message[:120]}"
        elif key in status_of and dl.reason.status() is not status_of[key]:
            wrong_reason[key] = (f"reason {dl.reason.value} does not match its result's status "
                                 f"{status_of[key].value}: {dl.message[:120]}")
    return Verdict(
        mode=mode,
        expected=len(expected),
        answered=len(first),
        missing=tuple(sorted(set(expected) - set(first))),
        duplicates=duplicates,
        identical_duplicates=len(set(duplicates) - conflicting),
        conflicting_duplicates=len(conflicting),
        mismatched=mismatched,
        dead_letters_expected=len(dead_expected),
        dead_letters_missing=tuple(sorted(set(dead_expected) - set(dead_counts))),
        dead_letters_duplicated=sum(1 for n in dead_counts.values() if n > 1),
        dead_letters_wrong_reason=wrong_reason,
        unexpected=tuple(sorted(unexpected)),
    )


def _content(result: InferenceResult) -> tuple[Any, ...]:
    """What a repeated answer must repeat (timings and completion time may differ)."""
    tensors = tuple((t.name, t.dtype, t.shape, bytes(t.data)) for t in result.outputs)
    return result.status, result.model, result.version, tensors


def _mismatch(want: Expectation, got: InferenceResult, rtol: float, atol: float) -> str | None:
    if want.status is not None and got.status is not want.status:
        return f"status {got.status.value}, expected {want.status.value} ({(got.error or '')[:120]})"
    if want.outputs is None:
        return None
    for name, array in want.outputs.items():
        try:
            actual = got.output(name)
        except (KeyError, ValueError) as exc:
            return str(exc)
        if actual.shape != array.shape:
            return f"output {name!r} has shape {actual.shape}, expected {array.shape}"
        if array.dtype.kind == "f":
            if not np.allclose(actual, array, rtol=rtol, atol=atol):
                return f"output {name!r} differs from direct ONNX Runtime beyond rtol={rtol}"
        elif not np.array_equal(actual, array):
            return f"output {name!r} is {actual.tolist()[:8]}, expected {array.tolist()[:8]}"
    return None


def recovery_times(arrivals: Sequence[float], faults: Sequence[float], end: float) -> list[float]:
    """Per fault, the longest stretch with no result between it and the last result before the
    next fault (or ``end``).

    The stretch from the fault itself to the first result after it counts; a fault after which
    nothing arrives before the next one (or ``end``) scores that whole interval.

    Args:
        arrivals: Times results arrived (any order).
        faults: Times faults were injected.
        end: End of the observation.
    """
    times = np.sort(np.asarray(arrivals, dtype=float))
    ordered = sorted(faults)
    out = []
    for i, start in enumerate(ordered):
        stop = ordered[i + 1] if i + 1 < len(ordered) else end
        inside = times[(times > start) & (times <= stop)]
        if not len(inside):
            out.append(stop - start)
            continue
        # The tail after the window's last result is idle time (or the next fault), not an outage.
        out.append(float(np.diff(np.concatenate(([start], inside))).max()))
    return out


def longest_gap(arrivals: Sequence[float], start: float, stop: float) -> float:
    """Longest stretch with no result within ``[start, stop]`` (the baseline before any fault)."""
    times = np.sort(np.asarray(arrivals, dtype=float))
    inside = times[(times >= start) & (times <= stop)]
    if len(inside) < 2:
        return 0.0
    return float(np.diff(inside).max())
