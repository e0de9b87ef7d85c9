"""What the soak reads while it runs: the results it gets, and the job's cost and state from outside.

:class:`SoakCollector` reads the soak's results topic (read_committed) in a background thread
and keeps, per request, one bit (answered or not) and the latency from the request's
*scheduled* send time, which follows from its index (requests are paced at a fixed rate from a
known start), so a soak of millions of requests keeps no per-request times and no result
values. :class:`Probe` takes everything else at each sample: CPU and RSS of the TaskManager
processes that run the job (``/proc``, :mod:`bench.meter`), the job's state and checkpoints
(Flink REST), the consumer group's lag (Kafka) and bytes on disk of the logs and state.
"""

from __future__ import annotations

import os
import time
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aimass.contract.codec import Codec, DecodeError
from aimass.contract.messages import Status
from aimass.settings import Settings
from aimass.stack.flink import FlinkCluster
from bench.driver import TopicReader
from bench.meter import tree, usage

try:
    import psutil
except ImportError:  # pragma: no cover - psutil is in requirements-bench.txt
    psutil = None


def split_id(rid: str) -> tuple[int, int]:
    """(phase, index) of a :func:`bench.workload.request_id`; (-1, -1) for anything else."""
    try:
        return int(rid[9:13], 16), int(rid[24:], 16)
    except ValueError:
        return -1, -1


@dataclass
class Schedule:
    """When the soak's request ``index`` was due: ``start + index / rate`` (``time.monotonic()``)."""

    phase: int
    count: int
    """Requests the soak will send at most (sizes the answered-bits array)."""
    rate: float
    start: float = 0.0
    """Set when production starts; results seen before are not timed."""


class SoakCollector(TopicReader):
    """Reads every result of the soak's topic; counts, times and spot-checks the soak's phase.

    Args:
        bootstrap: Kafka bootstrap servers.
        topic: The results topic.
        partitions: Its partition count.
        codec: Decodes the results that are spot-checked.
        schedule: The paced phase whose results are timed and counted.
        check_every: Decode every n-th request's result (status, batch size); 1 checks all.
    """

    def __init__(self, bootstrap: str, topic: str, partitions: int, codec: Codec, schedule: Schedule,
                 check_every: int = 1) -> None:
        self.codec = codec
        self.schedule = schedule
        self.check_every = max(1, check_every)
        self.answered = bytearray((schedule.count + 7) // 8)
        self.results = 0
        """Distinct requests of the soak's phase answered so far."""
        self.other = 0
        """Results of other phases (the warm-up)."""
        self.duplicates = 0
        self.checked = 0
        self.not_ok = 0
        self.batch_rows = 0
        self.latencies_ms = array("f")
        """Every timed result's latency, in arrival order (4 bytes each)."""
        super().__init__(bootstrap, topic, partitions, "bench-soak-collector")

    def note(self, rid: str, value: bytes | None, now: float) -> None:
        """Account for one result of ``rid`` that became readable at ``now``."""
        s = self.schedule
        phase, index = split_id(rid)
        if phase != s.phase or not 0 <= index < s.count:
            self.other += 1
            return
        byte, bit = divmod(index, 8)
        if self.answered[byte] & (1 << bit):
            self.duplicates += 1
            return
        self.answered[byte] |= 1 << bit
        self.results += 1
        if s.start:
            self.latencies_ms.append((now - (s.start + index / s.rate)) * 1000.0)
        if index % self.check_every == 0 and value is not None:
            self.checked += 1
            try:
                result = self.codec.decode_result(value)
            except DecodeError:
                self.not_ok += 1
                return
            if result.status is not Status.OK:
                self.not_ok += 1
            else:
                self.batch_rows += result.timings.batch_size

    def missing(self, sent: int) -> int:
        """Requests among the first ``sent`` with no result."""
        full, rest = divmod(sent, 8)
        answered = sum(bin(b).count("1") for b in self.answered[:full])
        if rest:
            answered += bin(self.answered[full] & ((1 << rest) - 1)).count("1")
        return sent - answered

    def wait(self, count: int, timeout_s: float, other: bool = False) -> bool:
        """Block until ``count`` results (of the paced phase, or of other phases) are in; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while (self.other if other else self.results) < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True


@dataclass
class Checkpoints:
    """Every completed checkpoint seen in the job's history: id -> (trigger epoch ms, duration ms, size)."""

    completed: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    failed: int = 0

    def note(self, stats: dict[str, Any]) -> None:
        """Add the completed entries of a ``/jobs/<jid>/checkpoints`` answer."""
        for entry in stats.get("history", []):
            if entry.get("status") == "COMPLETED" and entry.get("id") is not None:
                self.completed[int(entry["id"])] = (int(entry.get("trigger_timestamp") or 0),
                                                    int(entry.get("end_to_end_duration") or 0),
                                                    int(entry.get("state_size") or 0))
        self.failed = int((stats.get("counts") or {}).get("failed") or 0)


def dir_bytes(path: Path, skip: Iterable[str] = ()) -> int:
    """Apparent size of every file under ``path`` (symbolic links not followed); 0 if missing."""
    total, skipped = 0, set(skip)
    todo = [path]
    while todo:
        try:
            entries = list(os.scandir(todo.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name not in skipped:
                        todo.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:  # removed while walking (a checkpoint subsumed)
                continue
    return total


def _listening_ports(pids: Iterable[int]) -> set[int]:
    ports: set[int] = set()
    if psutil is None:
        return ports
    for pid in pids:
        try:
            for conn in psutil.Process(pid).net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr:
                    ports.add(int(conn.laddr.port))
        except psutil.Error:
            continue
    return ports


class Probe:
    """Reads the job's cost and state at each sample (one instance per soak, not thread-safe).

    Args:
        settings: The soak's settings (the stack's REST port, state folder, the job's group).
        job_id: The running job.
    """

    def __init__(self, settings: Settings, job_id: str) -> None:
        from confluent_kafka import Consumer

        self.settings = settings
        self.job_id = job_id
        self.cluster = FlinkCluster(settings)
        self.checkpoints = Checkpoints()
        self._cpu: dict[int, float] = {}
        self._pids: list[int] = []
        self._pids_at = 0.0
        self.kafka = Consumer({
            "bootstrap.servers": settings.kafka.bootstrap,
            "group.id": settings.job.consumer_group,  # only read (OffsetFetch): never joins, never commits
            "enable.auto.commit": False,
        })

    def close(self) -> None:
        """Close the Kafka client."""
        self.kafka.close()

    # -- processes ---------------------------------------------------------------------------

    def taskmanager_pids(self) -> list[int]:
        """Pids of the TaskManagers (of this stack) that run the job's tasks; all of them if unknown.

        The REST API names the TaskManagers by resource id and data port; a TaskManager
        process is matched by the ports it listens on. Looked up again every 30 s (a rescale
        or a restart moves tasks).
        """
        if self._pids and time.monotonic() - self._pids_at < 30:
            return self._pids
        ours = {tm.name: pid for tm in self.cluster.taskmanagers() if (pid := tm.pid()) is not None}
        chosen = list(ours.values())
        try:
            used = set()
            for vertex in self.cluster.rest(f"/jobs/{self.job_id}", timeout=5).get("vertices", []):
                info = self.cluster.rest(f"/jobs/{self.job_id}/vertices/{vertex['id']}/taskmanagers", timeout=5)
                used |= {tm.get("taskmanager-id") for tm in info.get("taskmanagers", [])}
            ports = {int(tm["dataPort"]) for tm in self.cluster.rest("/taskmanagers", timeout=5)["taskmanagers"]
                     if tm.get("id") in used and tm.get("dataPort")}
            matched = [pid for pid in ours.values() if _listening_ports(tree([pid])) & ports]
            if matched:
                chosen = matched
        except (OSError, ValueError, KeyError):
            pass
        self._pids, self._pids_at = chosen, time.monotonic()
        return chosen

    def cpu_rss(self) -> tuple[float, int, list[int]]:
        """(CPU seconds since the last call, RSS bytes now, root pids) of the job's TaskManager trees.

        A process first seen now contributes no CPU (its baseline is taken); one that vanished
        contributes what it had at its last sample.
        """
        roots = self.taskmanager_pids()
        cpu, rss = 0.0, 0
        seen: dict[int, float] = {}
        for pid in tree(roots):
            used, mem = usage([pid])
            if not mem:
                continue
            seen[pid] = used
            rss += mem
            if pid in self._cpu:
                cpu += max(0.0, used - self._cpu[pid])
        self._cpu = seen
        return cpu, rss, roots

    # -- Flink and Kafka ---------------------------------------------------------------------

    def job_state(self) -> str:
        """The job's state (RUNNING, RESTARTING, FAILED ...); ``UNKNOWN`` if the REST API does not answer."""
        try:
            return str(self.cluster.rest(f"/jobs/{self.job_id}", timeout=5)["state"])
        except (OSError, ValueError, KeyError):
            return "UNKNOWN"

    def checkpoint(self) -> dict[str, Any]:
        """The latest completed checkpoint (id, size, duration) and counts; notes the history."""
        try:
            stats: dict[str, Any] = self.cluster.rest(f"/jobs/{self.job_id}/checkpoints", timeout=5)
        except (OSError, ValueError):
            return {}
        self.checkpoints.note(stats)
        latest = (stats.get("latest") or {}).get("completed") or {}
        counts = stats.get("counts") or {}
        return {
            "ckpt_id": latest.get("id"),
            "ckpt_size_bytes": latest.get("state_size"),
            "ckpt_checkpointed_bytes": latest.get("checkpointed_size"),
            "ckpt_duration_ms": latest.get("end_to_end_duration"),
            "ckpts_completed": counts.get("completed"),
            "ckpts_failed": counts.get("failed"),
        }

    def _ends(self, topic: str) -> dict[int, int]:
        from confluent_kafka import TopicPartition

        ends = {}
        for p in range(self.settings.kafka.partitions):
            _, high = self.kafka.get_watermark_offsets(TopicPartition(topic, p), timeout=5, cached=False)
            ends[p] = high
        return ends

    def kafka_counts(self) -> dict[str, Any]:
        """Lag of the job's group on the requests topic (committed at checkpoints) and dead letters."""
        from confluent_kafka import KafkaException, TopicPartition

        k = self.settings.kafka
        out: dict[str, Any] = {"lag": None, "dead_letters": None}
        try:
            ends = self._ends(k.requests_topic)
            committed = self.kafka.committed([TopicPartition(k.requests_topic, p) for p in ends], timeout=5)
            offsets = {tp.partition: tp.offset for tp in committed if tp.offset >= 0}
            if offsets:
                out["lag"] = sum(max(0, end - offsets.get(p, 0)) for p, end in ends.items())
            out["dead_letters"] = sum(self._ends(k.dead_letter_topic).values())
        except KafkaException:
            pass
        return out

    def disk(self) -> dict[str, int]:
        """Bytes of the logs folder, of this job's checkpoints and of the whole state folder but Kafka's data."""
        state = self.settings.paths.state_dir
        return {
            "disk_logs_bytes": dir_bytes(state / "logs"),
            "disk_checkpoints_bytes": dir_bytes(state / "checkpoints" / self.job_id),
            "disk_state_bytes": dir_bytes(state, skip=("kafka",)),
        }
