"""Submitting, finding and cancelling the inference job on the local session cluster."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

from aimass.settings import PROJECT_ROOT, Settings
from aimass.stack import redact
from aimass.stack.flink import FlinkCluster
from aimass.stack.procs import StackError

JOB_SCRIPT = PROJECT_ROOT / "flink_jobs" / "inference_job.py"


def submit(
    settings: Settings, overrides: Mapping[str, str] | None = None, timeout_s: float = 180,
    savepoint: str | None = None,
) -> str:
    """Submit the inference job (detached) and wait until it is RUNNING; returns its job id.

    If a job of the same name is already running, its id is returned and nothing is submitted.
    With ``savepoint``, the job starts from that savepoint (its keyed state and source offsets).
    ``overrides`` (``section.field`` -> value) reach the job through the environment of the
    ``flink run`` child, as every setting does, never its command line (which any local user
    can read in ``/proc``). What ``flink run`` printed is shown with secrets masked.
    """
    if overrides:
        settings = Settings.load(env=settings.as_env(), overrides=overrides)
    cluster = FlinkCluster(settings)
    running = cluster.running_job(settings.job.name)
    if running is not None:
        return str(running["jid"])
    if settings.job.python_mode == "thread":
        _restart_stale_taskmanagers(settings, cluster)
    args = ["run", "-d", *(["-s", savepoint] if savepoint else []),
            "-py", str(JOB_SCRIPT), "-pyexec", sys.executable, "-pyclientexec", sys.executable]
    done = cluster.flink_cli(*args, timeout=timeout_s)
    if done.returncode != 0:
        output = redact.mask(done.stdout + done.stderr, settings)
        raise StackError(f"`flink run` failed (exit {done.returncode}):\n{output[-4000:]}")
    job_id = None
    for line in done.stdout.splitlines():
        if "JobID" in line:
            job_id = line.rsplit(" ", 1)[-1].strip()
    if job_id is None:
        raise StackError(f"`flink run` printed no job id:\n{redact.mask(done.stdout, settings)[-2000:]}")
    wait_running(cluster, job_id, timeout_s)
    return job_id


def _restart_stale_taskmanagers(settings: Settings, cluster: FlinkCluster) -> None:
    """Restart our TaskManagers whose interpreter holds older project code (thread mode)."""
    stale = cluster.stale_taskmanagers()
    if not stale:
        return
    print(f"[aimass] project code changed since TaskManager(s) {stale} started; restarting them "
          "(thread mode keeps imported modules for the TaskManager's life)", flush=True)
    running = [tm for tm in cluster.taskmanagers() if tm.pid() is not None]
    for index in stale:
        cluster.taskmanager(index).stop()
    for index in stale:
        cluster.start_taskmanager(index)
    cluster.wait_ready(len(running))


def wait_running(cluster: FlinkCluster, job_id: str, timeout_s: float = 120) -> dict[str, Any]:
    """Block until every vertex of the job is RUNNING; raise with the job's exception if it fails."""
    deadline = time.monotonic() + timeout_s
    state = "unknown"
    while time.monotonic() < deadline:
        detail = cluster.rest(f"/jobs/{job_id}")
        state = detail["state"]
        if state in ("FAILED", "CANCELED", "FINISHED"):
            exceptions = cluster.rest(f"/jobs/{job_id}/exceptions")
            # Flink 2 answers with the history only; older ones with root-exception.
            history = (exceptions.get("exceptionHistory") or {}).get("entries") or [{}]
            root = (exceptions.get("root-exception") or history[0].get("stacktrace") or "")[:3000]
            root = redact.mask(root, cluster.settings) or "no exception recorded; see `aimass logs jobmanager`"
            raise StackError(f"job {job_id} is {state}:\n{root}")
        vertices = detail.get("vertices", [])
        if state == "RUNNING" and vertices and all(v["status"] == "RUNNING" for v in vertices):
            return dict(detail)
        time.sleep(0.5)
    raise StackError(
        f"job {job_id} not running after {timeout_s:.0f}s (state {state}); see `aimass logs taskmanager-0`"
    )


def cancel(settings: Settings) -> list[str]:
    """Cancel every running job named like the inference job; returns their ids."""
    cluster = FlinkCluster(settings)
    cancelled = []
    for job in cluster.jobs():
        if job["name"] == settings.job.name and job["state"] not in ("FAILED", "CANCELED", "FINISHED"):
            cluster.rest(f"/jobs/{job['jid']}", method="PATCH")
            cancelled.append(str(job["jid"]))
    for jid in cancelled:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and cluster.rest(f"/jobs/{jid}")["state"] != "CANCELED":
            time.sleep(0.3)
    return cancelled


def savepoint(cluster: FlinkCluster, settings: Settings, job_id: str, stop: bool = False,
              timeout_s: float = 180) -> str:
    """Take a savepoint of ``job_id`` under ``settings.savepoint_uri`` (stopping the job with it
    when ``stop``); returns its location, which ``submit(savepoint=...)`` restores on this or
    another cluster that can read it."""
    target = settings.savepoint_uri
    if stop:
        trigger = cluster.rest(f"/jobs/{job_id}/stop", method="POST", body={"drain": False, "targetDirectory": target})
    else:
        trigger = cluster.rest(f"/jobs/{job_id}/savepoints", method="POST",
                               body={"target-directory": target, "cancel-job": False})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = cluster.rest(f"/jobs/{job_id}/savepoints/{trigger['request-id']}")
        if status["status"]["id"] == "COMPLETED":
            operation = status.get("operation", {})
            if "failure-cause" in operation:
                cause = operation["failure-cause"].get("stack-trace", "")[:2000]
                raise StackError(f"the savepoint of job {job_id} failed; the job keeps running:\n{cause}")
            return str(operation["location"])
        time.sleep(0.5)
    raise StackError(f"no savepoint of job {job_id} after {timeout_s:.0f}s (to {target}); see `aimass logs jobmanager`")
