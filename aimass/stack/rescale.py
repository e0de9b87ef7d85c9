"""Changing the parallelism of the running inference job, keeping its state and requests.

Two ways, both from the latest state of the job:

* ``adaptive`` (default): the session cluster runs the adaptive scheduler, so the job's
  per-vertex resource requirements can be changed over REST
  (``PUT /jobs/<id>/resource-requirements``); Flink restarts the job from its latest
  checkpoint at the new parallelism, redistributing key groups (pending batches,
  de-duplication entries, counters move with their keys).
* ``savepoint`` (fallback): stop the job with a savepoint, then submit it again from that
  savepoint with ``job.parallelism`` set to the new value.

``pipeline.max-parallelism`` (``AIMASS_JOB_MAX_PARALLELISM``, 128) is the number of key groups;
it is fixed for the life of the job's state, and bounds every rescale.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aimass.settings import Settings
from aimass.stack import jobs
from aimass.stack.flink import FlinkCluster
from aimass.stack.procs import StackError

Method = Literal["adaptive", "savepoint"]


class RescaleError(StackError):
    """A rescale that cannot be done; the message says why and what to change."""


@dataclass(frozen=True)
class Vertex:
    """One job vertex as the REST API shows it."""

    id: str
    name: str
    parallelism: int
    max_parallelism: int
    records_in: tuple[int, ...] = field(default=())
    """Records received per subtask (``read-records``) since the vertex last started."""


@dataclass(frozen=True)
class RescaleResult:
    """What a rescale did."""

    job_id: str
    before: int
    after: int
    method: Method
    seconds: float
    """From the request to every vertex RUNNING at the new parallelism."""


def _job_id(cluster: FlinkCluster, settings: Settings) -> str:
    job = cluster.running_job(settings.job.name)
    if job is None:
        raise RescaleError(f"no running job named {settings.job.name!r}: submit it first (`aimass submit`)")
    return str(job["jid"])


def vertices(cluster: FlinkCluster, job_id: str) -> list[Vertex]:
    """The job's vertices with their parallelism and per-subtask record counts."""
    detail = cluster.rest(f"/jobs/{job_id}")
    out = []
    for v in detail["vertices"]:
        records: tuple[int, ...] = ()
        try:
            subtasks = cluster.rest(f"/jobs/{job_id}/vertices/{v['id']}").get("subtasks", [])
            records = tuple(int(s.get("metrics", {}).get("read-records", 0)) for s in subtasks)
        except (OSError, ValueError):
            pass
        out.append(Vertex(v["id"], v["name"], int(v["parallelism"]), int(v["maxParallelism"]), records))
    return out


def check(cluster: FlinkCluster, job_vertices: list[Vertex], parallelism: int) -> None:
    """Refuse a parallelism above max parallelism or above the cluster's task slots."""
    limit = min(v.max_parallelism for v in job_vertices)
    if parallelism < 1:
        raise RescaleError(f"parallelism {parallelism} must be at least 1")
    if parallelism > limit:
        raise RescaleError(
            f"parallelism {parallelism} is above the job's max parallelism {limit} (pipeline.max-parallelism, "
            "the number of key groups; it is fixed for the life of the job's state)"
        )
    overview = cluster.rest("/overview")
    slots = int(overview["slots-total"])
    if parallelism > slots:
        raise RescaleError(
            f"parallelism {parallelism} needs {parallelism} task slots but the cluster has {slots} "
            f"({overview['taskmanagers']} TaskManagers): add TaskManagers first, e.g. "
            f"`aimass taskmanagers {-(-parallelism // max(1, slots // max(1, int(overview['taskmanagers']))))}`"
        )


def wait_parallelism(cluster: FlinkCluster, job_id: str, parallelism: int, timeout_s: float) -> None:
    """Block until every vertex runs at ``parallelism`` (or the timeout)."""
    deadline = time.monotonic() + timeout_s
    seen = "unknown"
    while time.monotonic() < deadline:
        try:
            detail = cluster.rest(f"/jobs/{job_id}")
        except OSError:
            time.sleep(0.5)
            continue
        seen = f"{detail['state']}, " + ", ".join(f"{v['parallelism']}/{v['status']}" for v in detail["vertices"])
        if detail["state"] in ("FAILED", "CANCELED", "FINISHED"):
            raise RescaleError(f"job {job_id} is {detail['state']} during the rescale")
        if detail["state"] == "RUNNING" and all(
            v["parallelism"] == parallelism and v["status"] == "RUNNING" for v in detail["vertices"]
        ):
            return
        time.sleep(0.3)
    raise RescaleError(f"job {job_id} not running at parallelism {parallelism} after {timeout_s:.0f}s ({seen})")


def rescale(
    settings: Settings, parallelism: int, method: Method = "adaptive", timeout_s: float = 180,
    say: Callable[[str], None] = print,
) -> RescaleResult:
    """Change the running job's parallelism; returns when it runs at the new one."""
    cluster = FlinkCluster(settings)
    job_id = _job_id(cluster, settings)
    current = vertices(cluster, job_id)
    before = max(v.parallelism for v in current)
    check(cluster, current, parallelism)
    if parallelism > settings.job.lanes:
        say(f"warning: parallelism {parallelism} is above AIMASS_JOB_LANES={settings.job.lanes}: each model "
            f"has {settings.job.lanes} keys, so {parallelism - settings.job.lanes} subtask(s) per model stay idle")
    started = time.monotonic()
    if parallelism == before:
        say(f"job {job_id} already runs at parallelism {parallelism}")
        return RescaleResult(job_id, before, before, method, 0.0)
    if method == "adaptive":
        body: dict[str, Any] = {
            v.id: {"parallelism": {"lowerBound": 1, "upperBound": parallelism}} for v in current
        }
        say(f"asking the adaptive scheduler for parallelism {before} -> {parallelism} ...")
        cluster.rest(f"/jobs/{job_id}/resource-requirements", method="PUT", body=body)
        wait_parallelism(cluster, job_id, parallelism, timeout_s)
        new_id = job_id
    else:
        say(f"stopping job {job_id} with a savepoint ...")
        location = stop_with_savepoint(cluster, settings, job_id, timeout_s)
        say(f"savepoint {location}; resubmitting at parallelism {parallelism} ...")
        new_id = jobs.submit(
            settings, overrides={"job.parallelism": str(parallelism)}, timeout_s=timeout_s, savepoint=location
        )
        wait_parallelism(cluster, new_id, parallelism, timeout_s)
    seconds = time.monotonic() - started
    say(f"job {new_id} runs at parallelism {parallelism} ({seconds:.1f}s)")
    return RescaleResult(new_id, before, parallelism, method, seconds)


def stop_with_savepoint(cluster: FlinkCluster, settings: Settings, job_id: str, timeout_s: float) -> str:
    """Stop the job with a savepoint; returns the savepoint's location."""
    from aimass.stack.jobs import savepoint

    try:
        return savepoint(cluster, settings, job_id, stop=True, timeout_s=timeout_s)
    except StackError as exc:
        raise RescaleError(str(exc)) from None
