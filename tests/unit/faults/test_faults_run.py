"""The fault campaign's command line, its process lookup and its kept reports (no stack)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aimass.faults.inject import descendants, failures
from aimass.faults.plan import SMOKE, Plan
from aimass.faults.report import load_reports
from aimass.faults.run import parse_args, plan_from


def test_long_plan_sends_near_limit_records_and_a_back_to_back_kill() -> None:
    plan = plan_from(parse_args([]))
    assert plan == Plan() and plan.near_limit_oversized and plan.back_to_back_kills == 1
    assert plan.python_worker_kills == 0
    assert not plan_from(parse_args(["--no-near-limit"])).near_limit_oversized


def test_smoke_plan_restarts_the_broker() -> None:
    assert plan_from(parse_args(["--smoke"])) == SMOKE and SMOKE.broker_restarts == 1


def test_process_mode_kills_the_python_worker_by_default() -> None:
    assert plan_from(parse_args(["--python-mode", "process"])).python_worker_kills == 2
    assert plan_from(parse_args(["--python-mode", "process", "--python-worker-kills", "5"])).python_worker_kills == 5


def test_worker_kills_in_thread_mode_are_refused_with_the_fix() -> None:
    with pytest.raises(SystemExit, match="--python-mode process"):
        plan_from(parse_args(["--python-worker-kills", "1"]))


def test_fuzz_share_and_a_corpus_folder_come_from_the_command_line(tmp_path: Path) -> None:
    assert Plan().fuzz_share > 0 and SMOKE.fuzz_share > 0  # fuzzed records by default
    plan = plan_from(parse_args(["--smoke", "--fuzz-share", "0.5", "--bad-corpus", str(tmp_path)]))
    assert plan.fuzz_share == 0.5 and plan.corpus == str(tmp_path.resolve())


class _Rest:
    """A FlinkCluster stand-in answering the exception-history call with ``entries``."""

    def __init__(self, entries: list[dict[str, object]]) -> None:
        self.entries = entries

    def rest(self, path: str, timeout: float = 10) -> dict[str, object]:
        assert path == "/jobs/j/exceptions"
        return {"exceptionHistory": {"entries": self.entries}}


def test_failures_blame_python_code_and_unwritable_records_not_lost_processes() -> None:
    entries = [
        {"timestamp": 3, "exceptionName": "org.apache.flink.util.FlinkException",
         "stacktrace": "org.apache.flink.util.FlinkException: TaskManager with id tm-1 is no longer reachable.\n\tat"},
        {"timestamp": 1, "exceptionName": "pemja.core.PythonException",
         "stacktrace": "pemja.core.PythonException: <class 'ValueError'>: boom\n\tat pemja..."},
        {"timestamp": 2, "exceptionName": "java.lang.RuntimeException", "stacktrace": "java.lang.RuntimeException: x",
         "concurrentExceptions": [{"stacktrace": "org.apache.kafka.common.errors.RecordTooLargeException: big"}]},
        {"exceptionName": "no timestamp: skipped"},
    ]
    found = failures(_Rest(entries), "j")  # type: ignore[arg-type]
    assert [f.at_ms for f in found] == [1, 2, 3]
    assert [f.from_code for f in found] == [True, True, False]
    assert found[0].message == "pemja.core.PythonException: <class 'ValueError'>: boom"
    assert found[2].exception == "org.apache.flink.util.FlinkException"


def test_descendants_finds_grandchildren() -> None:
    parent = subprocess.Popen(  # noqa: S603 - a fixed command
        [sys.executable, "-c", "import subprocess, sys; subprocess.run([sys.executable, '-c', "
         "'import time; time.sleep(30)'])"],
    )
    try:
        found: list[int] = []
        deadline = time.monotonic() + 10
        while not found and time.monotonic() < deadline:
            found = descendants(parent.pid)
            time.sleep(0.05)
        assert len(found) == 1
        cmdline = Path(f"/proc/{found[0]}/cmdline").read_bytes()
        assert b"time.sleep(30)" in cmdline
    finally:
        for pid in descendants(parent.pid):
            subprocess.run(["kill", "-9", str(pid)], check=False)  # noqa: S603, S607
        parent.kill()
        parent.wait()


def test_reports_are_ordered_exactly_once_first_thread_mode_first(tmp_path: Path) -> None:
    for name, mode, python in (("a", "at-least-once", "thread"), ("b", "exactly-once", "process"),
                               ("c", "exactly-once", "thread")):
        (tmp_path / f"{name}.json").write_text(json.dumps({"mode": mode, "job": {"python_mode": python}}))
    got = [(r["mode"], r["job"]["python_mode"]) for r in load_reports(tmp_path)]
    assert got == [("exactly-once", "thread"), ("at-least-once", "thread"), ("exactly-once", "process")]


def test_throughput_loss_is_rendered_per_burst() -> None:
    from aimass.faults.report import _throughput_lines

    throughput = {"bursts": [{"valid": 10, "bad": 0, "valid_per_s": 4000.0}, {"valid": 10, "bad": 1,
                                                                              "valid_per_s": 3800.0}],
                  "clean_per_s": 4000.0, "with_bad_per_s": 3800.0, "loss": 0.05}
    page = "\n".join(_throughput_lines(throughput, {"bad_fraction": 0.01}))
    assert "| 2 | 10 | 1 | ? / ? | 3,800 |" in page and "**5.0% throughput loss**" in page
    assert _throughput_lines({}, {"bad_fraction": 0.01}) == []


@pytest.mark.parametrize("payload", [256 * 1024, 4 * 1024 * 1024])
def test_every_other_oversized_record_is_as_large_as_the_requests_topic_takes(payload: int) -> None:
    import random

    from aimass.contract.codec import Codec
    from aimass.faults.plan import bad_records
    from aimass.settings import Settings

    settings = Settings.load(env={"AIMASS_JOB_MAX_PAYLOAD_BYTES": str(payload)})
    maker = bad_records(settings, Codec(), random.Random(1), "t-", near_limit=True)
    just_over, near = (len(maker.make("oversized").value) for _ in range(2))
    limit = settings.job.request_record_limit
    assert payload < just_over < payload + 512
    # The near one still fits the topic with its Kafka envelope (key + batch header < 160 bytes).
    assert limit - 160 - 256 < near <= limit - 160
    off = bad_records(settings, Codec(), random.Random(1), "t-", near_limit=False)
    assert all(len(off.make("oversized").value) < payload + 512 for _ in range(2))


def test_a_result_for_an_own_record_owed_none_fails_the_oracle() -> None:
    from aimass.contract.messages import InferenceResult, Status
    from aimass.faults.oracle import judge

    stray = InferenceResult(request_id="run-1-bad-9", model="digits", status=Status.INVALID_INPUT, completed_at_ms=1)
    other = InferenceResult(request_id="someone-else", model="digits", status=Status.OK, completed_at_ms=1)
    verdict = judge("exactly-once", {}, [stray, other], own_prefix="run-1-")
    assert not verdict.ok and verdict.unexpected == ("run-1-bad-9",)
    assert "owed only a dead letter" in verdict.problems()[0]
    assert judge("exactly-once", {}, [other], own_prefix="run-1-").ok
