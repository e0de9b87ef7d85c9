"""Faults injected into a running local stack, and what the Flink REST API says about them.

Only processes of the given :class:`~aimass.stack.local.LocalStack` are touched (its pid files
under its own state folder): a TaskManager is SIGKILLed as in a crash and started again as a
supervisor would, the broker is stopped and started again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aimass.stack.flink import FlinkCluster
from aimass.stack.local import LocalStack


@dataclass(frozen=True)
class Fault:
    """One injected fault."""

    kind: str
    """``taskmanager-kill``, ``python-worker-kill`` or ``broker-restart``."""
    at: float
    """``time.monotonic()`` when it struck."""
    at_ms: int = 0
    """Wall-clock epoch milliseconds when it struck (to compare with Flink's timestamps)."""
    during_checkpoint: bool = False
    """The kill landed while a checkpoint was in flight (per the job's checkpoint history)."""
    down_s: float = 0.0
    """How long the process stayed down before it was started again."""
    back_to_back: bool = False
    """It struck while the job was still recovering from the fault before it."""


def num_restarts(cluster: FlinkCluster, job_id: str) -> int:
    """The job's ``numRestarts`` metric (REST ``/jobs/<id>/metrics?get=numRestarts``)."""
    answer = cluster.rest(f"/jobs/{job_id}/metrics?get=numRestarts", timeout=5)
    for metric in answer or []:
        if metric.get("id") == "numRestarts":
            return int(float(metric["value"]))
    raise RuntimeError(f"job {job_id} reports no numRestarts metric: {answer!r}")


def aim_at_checkpoint(cluster: FlinkCluster, job_id: str, interval_ms: int) -> None:
    """Sleep until shortly after the job's next checkpoint trigger.

    Polling for an IN_PROGRESS checkpoint does not work: the REST API caches checkpoint
    statistics for seconds, longer than a small checkpoint lasts. The trigger times do not
    drift much from the latest completed one plus whole intervals, and a checkpoint of this
    job takes tens to hundreds of milliseconds, so a kill a few tens of milliseconds after the
    predicted trigger usually lands inside it. :func:`checkpoint_spanning` says afterwards
    whether it did.
    """
    stats: dict[str, Any] = cluster.rest(f"/jobs/{job_id}/checkpoints", timeout=2)
    latest = (stats.get("latest") or {}).get("completed") or {}
    trigger = latest.get("trigger_timestamp")
    if not trigger:
        return
    duration = int(latest.get("end_to_end_duration") or 0)
    now_ms = time.time() * 1000
    nxt = trigger + interval_ms * (int((now_ms - trigger) // interval_ms) + 1)
    time.sleep(max(0.0, (nxt + min(max(duration // 3, 10), 50) - now_ms) / 1000))


def checkpoint_spanning(cluster: FlinkCluster, job_id: str, at_ms: int) -> bool:
    """Whether a checkpoint of the job was in flight at ``at_ms`` (epoch ms), per its history.

    Call it a few seconds after the moment (the REST API's statistics lag) and before ten more
    checkpoints have been taken (the history keeps the last ten by default).
    """
    stats: dict[str, Any] = cluster.rest(f"/jobs/{job_id}/checkpoints", timeout=5)
    for entry in stats.get("history", []):
        trigger = int(entry.get("trigger_timestamp") or 0)
        if not trigger or trigger > at_ms:
            continue
        done = entry.get("latest_ack_timestamp") if entry.get("status") == "COMPLETED" else None
        if entry.get("status") == "FAILED":
            done = entry.get("failure_timestamp")
        if entry.get("status") == "IN_PROGRESS" or (done is not None and int(done) >= at_ms):
            return True
    return False


#: Words in a failure's stack trace that put the blame on the job's own code or on a record it
#: produced, not on a lost process or connection: a Python exception raised in an operator
#: (pemja in thread mode, a Python traceback from the worker in process mode) or an output
#: record the sink cannot write.
CODE_FAILURE_MARKS = ("PythonException", "Traceback (most recent call last)", "RecordTooLargeException")


@dataclass(frozen=True)
class Failure:
    """One entry of the job's exception history."""

    at_ms: int
    exception: str
    """Class name of the root exception."""
    message: str
    """First line of its stack trace (clipped)."""
    from_code: bool
    """The stack trace names Python code or an unwritable record (:data:`CODE_FAILURE_MARKS`): a
    failure a bad record could cause, never one a killed process or a broker restart causes."""


def failures(cluster: FlinkCluster, job_id: str) -> list[Failure]:
    """The job's recorded failures, oldest first (REST exception history: the newest entries only,
    ``web.exception-history-size``, 16 by default; poll it to keep older ones)."""
    answer: dict[str, Any] = cluster.rest(f"/jobs/{job_id}/exceptions", timeout=5)
    out = []
    for entry in (answer.get("exceptionHistory") or {}).get("entries") or []:
        if not entry.get("timestamp"):
            continue
        traces = [entry.get("stacktrace") or ""] + [c.get("stacktrace") or "" for c in
                                                     entry.get("concurrentExceptions") or []]
        first = (traces[0].strip().splitlines() or [""])[0]
        out.append(Failure(int(entry["timestamp"]), str(entry.get("exceptionName") or "?"), first[:300],
                           any(mark in trace for trace in traces for mark in CODE_FAILURE_MARKS)))
    return sorted(out, key=lambda f: f.at_ms)


def failure_times(cluster: FlinkCluster, job_id: str) -> list[int]:
    """Epoch milliseconds of the job's recorded failures (see :func:`failures`)."""
    return [f.at_ms for f in failures(cluster, job_id)]


def kill_taskmanager(stack: LocalStack, index: int = 0, job_id: str | None = None, during_checkpoint: bool = False,
                     down_s: float = 0.0, interval_ms: int = 1000) -> Fault:
    """SIGKILL TaskManager ``index`` and start it again after ``down_s`` (as a supervisor would).

    Args:
        stack: The stack whose TaskManager dies.
        index: Which TaskManager.
        job_id: The job whose checkpoints are watched when ``during_checkpoint`` is set.
        during_checkpoint: Aim the kill at the next checkpoint (see :func:`aim_at_checkpoint`);
            whether it landed inside one is for :func:`checkpoint_spanning` to say later.
        down_s: Pause between the kill and the restart.
        interval_ms: The job's checkpoint interval.
    """
    if during_checkpoint and job_id is not None:
        aim_at_checkpoint(stack.flink, job_id, interval_ms)
    at, at_ms = time.monotonic(), int(time.time() * 1000)
    stack.flink.taskmanager(index).kill()  # SIGKILL: no shutdown hook, open transactions left behind
    if down_s > 0:
        time.sleep(down_s)
    stack.up()
    return Fault("taskmanager-kill", at, at_ms, False, down_s)


def restart_broker(stack: LocalStack, down_s: float = 3.0) -> Fault:
    """Stop the Kafka broker (SIGTERM, clean shutdown), keep it down ``down_s``, start it again."""
    at, at_ms = time.monotonic(), int(time.time() * 1000)
    stack.kafka.process.stop(timeout_s=30)
    time.sleep(down_s)
    stack.up()
    return Fault("broker-restart", at, at_ms, False, down_s)


def descendants(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """Pids of every live descendant of ``pid`` (children first), read from ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses; split after the last ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop(0)
        found.append(child)
        todo.extend(children.get(child, []))
    return found


def python_workers(stack: LocalStack, index: int = 0) -> list[int]:
    """Pids of the PyFlink Python worker processes of TaskManager ``index`` (process mode).

    In process mode a TaskManager starts its Python UDF workers as child processes (Apache
    Beam's SDK harness, ``pyflink.fn_execution``); in thread mode the interpreter lives inside
    the TaskManager's JVM and there is no separate worker to kill: there this is empty.
    """
    tm = stack.flink.taskmanager(index).pid()
    if tm is None:
        return []
    workers = []
    for pid in descendants(tm):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "pyflink" in cmdline and "python" in cmdline:
            workers.append(pid)
    return workers


def kill_python_worker(stack: LocalStack, index: int = 0) -> Fault:
    """SIGKILL the Python worker processes of TaskManager ``index``; the TaskManager lives on.

    Raises:
        RuntimeError: the TaskManager has no Python worker (thread mode, or no task deployed).
    """
    pids = python_workers(stack, index)
    if not pids:
        raise RuntimeError(f"TaskManager {index} has no Python worker process (thread mode runs Python in the JVM)")
    at, at_ms = time.monotonic(), int(time.time() * 1000)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # exited with its parent
            os.kill(pid, signal.SIGKILL)
    return Fault("python-worker-kill", at, at_ms, False, 0.0)
