"""The Java/Python frames: round trips, and damaged frames refused."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aimass.contract.frames import (
    DEAD_LETTER,
    ERROR_RESULT,
    RESULT,
    SHADOW,
    BatchRecord,
    FrameError,
    OutputsWriter,
    dedup_verdict,
    read_batch,
    read_outputs,
    write_batch,
)

records = st.builds(
    BatchRecord,
    value=st.binary(max_size=300),
    topic=st.text(max_size=20),
    partition=st.integers(-(2**31), 2**31 - 1),
    offset=st.integers(-(2**63), 2**63 - 1),
    received_ms=st.integers(-(2**63), 2**63 - 1),
    rule=st.integers(0, 6),
    bucket=st.integers(-1, 9999),
    version=st.text(max_size=8),
    alias=st.text(max_size=8),
    shadow=st.text(max_size=8),
    detail=st.text(max_size=30),
)


@given(st.lists(records, max_size=20))
def test_batch_frames_round_trip(batch: list[BatchRecord]) -> None:
    assert read_batch(write_batch(batch)) == batch


@given(st.lists(st.tuples(st.sampled_from([RESULT, ERROR_RESULT, DEAD_LETTER, SHADOW]), st.text(max_size=10),
                          st.binary(max_size=100)), max_size=20))
def test_outputs_frames_round_trip(outputs: list[tuple[int, str, bytes]]) -> None:
    writer = OutputsWriter()
    for kind, key, value in outputs:
        writer.add(kind, key, value)
    assert len(writer) == len(outputs)
    assert read_outputs(writer.frame()) == outputs


@given(st.binary(max_size=60))
def test_garbage_is_a_frame_error_never_another_exception(data: bytes) -> None:
    for reader in (read_batch, read_outputs):
        with contextlib.suppress(FrameError):
            reader(data)


def test_damaged_frames_are_refused() -> None:
    good = write_batch([BatchRecord(b"abc", "t", 0, 1, 2)])
    for bad in (b"\x01" + good[1:], good[:-1], good + b"\x00"):
        with pytest.raises(FrameError):
            read_batch(bad)


def test_an_id_keeps_its_first_claiming_result_and_error_results_claim_nothing() -> None:
    assert dedup_verdict(claimed=False, claims=True) == (True, True)
    assert dedup_verdict(claimed=False, claims=False) == (True, False)
    assert dedup_verdict(claimed=True, claims=True) == (False, False)
    assert dedup_verdict(claimed=True, claims=False) == (False, False)
