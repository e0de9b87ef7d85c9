"""Bounded, quiet logs on the real stack: ``.out`` through the capped writer, no warning per checkpoint."""

from __future__ import annotations

import os
import re
import time

import pytest

from aimass.settings import Settings
from aimass.stack.local import LocalStack

pytestmark = pytest.mark.integration

LOG4J_INFO_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO ", re.MULTILINE)


def test_flink_logs_stay_bounded_and_checkpoints_log_no_warning(
    test_settings: Settings, local_stack: LocalStack, inference_job: str
) -> None:
    flink = local_stack.flink
    deadline = time.monotonic() + 90
    completed = 0
    while time.monotonic() < deadline and completed < 5:
        completed = int(flink.rest(f"/jobs/{inference_job}/checkpoints")["counts"]["completed"])
        time.sleep(1)
    assert completed >= 5, "the job completed fewer than 5 checkpoints in 90 s"
    running = [p for p in [flink.jobmanager, *flink.taskmanagers()] if p.pid() is not None]
    assert len(running) >= 2
    cap = test_settings.flink.log_file_bytes
    for proc in running:
        assert os.readlink(f"/proc/{proc.pid()}/fd/1").startswith("pipe:"), f"{proc.name}'s stdout is not capped"
        assert proc.log_file.stat().st_size <= cap
        # stdout takes warnings and errors: the log's INFO lines are not copied into the .out file.
        assert not LOG4J_INFO_LINE.search(proc.log_file.read_text(errors="replace")), proc.log_file
    tm_logs = [p for tm in running[1:] for p in local_stack.log_files(tm.name) if p.suffix == ".log" and p.exists()]
    assert tm_logs
    # The sinks' committers re-register 'pendingCommittables' at every checkpoint; log4j drops the warning.
    assert not any("'pendingCommittables'" in p.read_text(errors="replace") for p in tm_logs)
