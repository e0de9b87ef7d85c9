"""Faults injected into a running local stack, and what the Flink REST API says about them.

Only processes of the given :class:`~aimass.stack.local.LocalStack` are touched (its pid files
under its own state folder): a TaskManager is SIGKILLed as in a crash and started again as a
supervisor would, the broker is stopped and started again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aimass.stack.flink import FlinkCluster
from aimass.stack.local import LocalStack


@dataclass(frozen=True)
class Fault:
    """One injected fault."""

    kind: str
    """``taskmanager-kill`` or ``broker-restart``."""
    at: float
    """``time.monotonic()`` when it struck."""
    during_checkpoint: bool = False
    """A checkpoint was IN_PROGRESS (per the REST API) right before the kill."""
    down_s: float = 0.0
    """How long the process stayed down before it was started again."""


def num_restarts(cluster: FlinkCluster, job_id: str) -> int:
    """The job's ``numRestarts`` metric (REST ``/jobs/<id>/metrics?get=numRestarts``)."""
    answer = cluster.rest(f"/jobs/{job_id}/metrics?get=numRestarts", timeout=5)
    for metric in answer or []:
        if metric.get("id") == "numRestarts":
            return int(float(metric["value"]))
    raise RuntimeError(f"job {job_id} reports no numRestarts metric: {answer!r}")


def checkpoints_in_progress(cluster: FlinkCluster, job_id: str) -> int:
    """How many checkpoints of the job are IN_PROGRESS right now."""
    stats: dict[str, Any] = cluster.rest(f"/jobs/{job_id}/checkpoints", timeout=2)
    return int(stats.get("counts", {}).get("in_progress", 0))


def completed_checkpoints(cluster: FlinkCluster, job_id: str) -> int:
    """How many checkpoints of the job have completed so far."""
    stats: dict[str, Any] = cluster.rest(f"/jobs/{job_id}/checkpoints", timeout=2)
    return int(stats.get("counts", {}).get("completed", 0))


def wait_for_checkpoint(cluster: FlinkCluster, job_id: str, timeout_s: float = 5.0) -> bool:
    """Poll until a checkpoint is IN_PROGRESS; False if none was seen within ``timeout_s``.

    Small checkpoints complete in tens of milliseconds, so polling can miss them: the caller
    then kills anyway, aimed right after a trigger (see :func:`kill_taskmanager`).
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if checkpoints_in_progress(cluster, job_id):
                return True
        except OSError:
            pass
        time.sleep(0.01)
    return False


def kill_taskmanager(stack: LocalStack, index: int = 0, job_id: str | None = None, during_checkpoint: bool = False,
                     down_s: float = 0.0) -> Fault:
    """SIGKILL TaskManager ``index`` and start it again after ``down_s`` (as a supervisor would).

    Args:
        stack: The stack whose TaskManager dies.
        index: Which TaskManager.
        job_id: The job whose checkpoints are watched when ``during_checkpoint`` is set.
        during_checkpoint: Wait (up to 5 s) for an IN_PROGRESS checkpoint before the kill.
        down_s: Pause between the kill and the restart.
    """
    in_checkpoint = False
    if during_checkpoint and job_id is not None:
        in_checkpoint = wait_for_checkpoint(stack.flink, job_id)
    at = time.monotonic()
    stack.flink.taskmanager(index).kill()  # SIGKILL: no shutdown hook, open transactions left behind
    if down_s > 0:
        time.sleep(down_s)
    stack.up()
    return Fault("taskmanager-kill", at, in_checkpoint, down_s)


def restart_broker(stack: LocalStack, down_s: float = 3.0) -> Fault:
    """Stop the Kafka broker (SIGTERM, clean shutdown), keep it down ``down_s``, start it again."""
    at = time.monotonic()
    stack.kafka.process.stop(timeout_s=30)
    time.sleep(down_s)
    stack.up()
    return Fault("broker-restart", at, False, down_s)
