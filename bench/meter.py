"""CPU time and memory of a system's processes, sampled from outside.

A :class:`Meter` samples a set of root pids and all their descendants (a TaskManager JVM and
the Python workers it starts, a worker process and its threads) a few times a second: the sum
of their resident set sizes and of their user + system CPU seconds. Uses psutil when it is
installed, else reads ``/proc`` directly (Linux).
"""

from __future__ import annotations

import os
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable

try:
    import psutil
except ImportError:  # pragma: no cover - psutil is in requirements-bench.txt
    psutil = None

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def tree(roots: Iterable[int]) -> list[int]:
    """The root pids that are alive and all their descendants."""
    found: list[int] = []
    if psutil is not None:
        for pid in roots:
            try:
                proc = psutil.Process(pid)
                found += [pid, *(c.pid for c in proc.children(recursive=True))]
            except psutil.Error:
                continue
        return found
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                parents.setdefault(int(stat[1]), []).append(int(entry))
    todo = [pid for pid in roots if _stat(pid) is not None]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += parents.get(pid, [])
    return found


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state is [0], ppid [1])."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def usage(pids: Iterable[int]) -> tuple[float, int]:
    """(CPU seconds, RSS bytes) summed over ``pids``; vanished processes count as zero."""
    cpu, rss = 0.0, 0
    for pid in pids:
        if psutil is not None:
            try:
                proc = psutil.Process(pid)
                with proc.oneshot():
                    times = proc.cpu_times()
                    cpu += times.user + times.system
                    rss += proc.memory_info().rss
            except psutil.Error:
                continue
        else:
            stat = _stat(pid)
            if stat is not None:
                cpu += (int(stat[11]) + int(stat[12])) / _TICKS  # utime, stime
                rss += int(stat[21]) * _PAGE
    return cpu, rss


class Meter:
    """Samples the process tree of ``roots()`` every ``interval_s`` in a background thread.

    CPU time is made monotonic per pid: a process that exits keeps the CPU seconds it had at
    its last sample, so a window's CPU is never negative.
    """

    def __init__(self, roots: Callable[[], Iterable[int]], interval_s: float = 0.25) -> None:
        self.roots = roots
        self.interval_s = interval_s
        self.times: list[float] = []
        self.cpu: list[float] = []
        self.peak_rss = 0
        self._last: dict[int, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-meter", daemon=True)

    def __enter__(self) -> Meter:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        """Take one sample now."""
        pids = tree(self.roots())
        with self._lock:
            rss = 0
            for pid in pids:
                cpu, mem = usage([pid])
                if mem:
                    self._last[pid] = max(cpu, self._last.get(pid, 0.0))
                    rss += mem
            self.peak_rss = max(self.peak_rss, rss)
            self.times.append(time.monotonic())
            self.cpu.append(sum(self._last.values()))

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds the processes used between two ``time.monotonic()`` instants."""
        self.sample()
        with self._lock:
            return max(0.0, self._at(end) - self._at(start))

    def _at(self, when: float) -> float:
        i = bisect_left(self.times, when)
        if i >= len(self.times):
            return self.cpu[-1]
        if i == 0:
            return self.cpu[0]
        t0, t1 = self.times[i - 1], self.times[i]
        c0, c1 = self.cpu[i - 1], self.cpu[i]
        return c0 + (c1 - c0) * ((when - t0) / (t1 - t0) if t1 > t0 else 1.0)
