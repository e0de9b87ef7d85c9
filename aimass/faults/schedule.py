"""When and how a fault campaign strikes: the seeded schedule of its traffic phase's faults.

TaskManager SIGKILLs (a share aimed at the next checkpoint trigger, then read back from the
checkpoint history to say whether they landed inside one), Python worker SIGKILLs, broker
restarts, and back-to-back kills that strike 1-8 s after another fault while the job is still
recovering. Each fault waits until the job answered again after the one before it, plus
``min_fault_spacing_s``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import time
from collections.abc import Callable

from aimass.faults.inject import (
    Fault,
    checkpoint_spanning,
    kill_python_worker,
    kill_taskmanager,
    python_workers,
    restart_broker,
)
from aimass.faults.plan import Plan
from aimass.stack.local import LocalStack


class FaultSchedule:
    """The faults of one campaign's traffic phase.

    Args:
        stack: The stack whose TaskManager 0 and broker are faulted.
        job_id: The running inference job (its checkpoints are aimed at and read back).
        plan: How many faults of each kind, spacing and down times.
        rng: The campaign's seeded generator (moments, kinds' order, which kills aim).
        interval_ms: The job's checkpoint interval.
        wait_recovered: Blocks until a result arrives after a fault and returns its arrival
            time (``time.monotonic()``); raises ``TimeoutError`` when none comes.
        say: Progress lines.
    """

    def __init__(self, stack: LocalStack, job_id: str, plan: Plan, rng: random.Random, interval_ms: int,
                 wait_recovered: Callable[[Fault], float], say: Callable[[str], None]) -> None:
        self.stack, self.job_id, self.plan, self.rng = stack, job_id, plan, rng
        self.interval_ms, self.wait_recovered, self.say = interval_ms, wait_recovered, say
        self.problems: list[str] = []
        """What kept the schedule from its plan (a fault the job never recovered from)."""

    def run(self, start: float, duration: float) -> list[Fault]:
        """Strike every fault of the plan within ``duration`` seconds from ``start``; the faults
        struck, in order (fewer, with the reason in :attr:`problems`, if the job stops recovering)."""
        plan = self.plan
        kinds = (["taskmanager-kill"] * plan.kills + ["python-worker-kill"] * plan.python_worker_kills
                 + ["broker-restart"] * plan.broker_restarts)
        self.rng.shuffle(kinds)
        moments = sorted(self.rng.uniform(0.1, 0.85) * duration for _ in kinds)
        aimed = set(self.rng.sample(range(plan.kills), round(plan.kills * plan.checkpoint_kill_share)))
        # Which faults are followed, while the job is still recovering, by one more kill.
        followed = set(self.rng.sample(range(len(kinds)), min(plan.back_to_back_kills, len(kinds))))
        faults: list[Fault] = []
        kill_index = 0
        try:
            for i, (kind, moment) in enumerate(zip(kinds, moments, strict=True)):
                if faults:
                    recovered = self.wait_recovered(faults[-1])
                    self._sleep_until(recovered + plan.min_fault_spacing_s)
                self._sleep_until(start + moment)
                if kind == "taskmanager-kill":
                    struck = [self._kill_taskmanager(kill_index in aimed)]
                    kill_index += 1
                elif kind == "python-worker-kill":
                    struck = [self._kill_python_worker()]
                else:
                    struck = [restart_broker(self.stack, plan.broker_down_s)]
                if i in followed:
                    self._sleep_until(struck[0].at + struck[0].down_s + self.rng.uniform(1.0, 8.0))
                    struck.append(dataclasses.replace(self._kill_taskmanager(False), back_to_back=True))
                for fault in self._landed(struck):
                    self._record(faults, fault, start)
            if faults:
                self.wait_recovered(faults[-1])
        except TimeoutError as exc:
            # The job did not come back: the verdict must say so, and the report still be written.
            self.problems.append(f"{exc}; {len(faults)} of {len(kinds) + len(followed)} faults injected")
            self.say(f"  {exc}: no more faults")
        return faults

    def _record(self, faults: list[Fault], fault: Fault, start: float) -> None:
        faults.append(fault)
        where = " during a checkpoint" if fault.during_checkpoint else ""
        where += " while still recovering" if fault.back_to_back else ""
        self.say(f"  {fault.kind}{where} at +{fault.at - start:.1f} s")

    def _kill_taskmanager(self, aim: bool) -> Fault:
        down = self.rng.uniform(0, self.plan.max_taskmanager_down_s)
        return kill_taskmanager(self.stack, 0, self.job_id, during_checkpoint=aim, down_s=down,
                                interval_ms=self.interval_ms)

    def _landed(self, faults: list[Fault]) -> list[Fault]:
        """``faults`` with whether each TaskManager kill landed inside a checkpoint."""
        if not any(f.kind == "taskmanager-kill" for f in faults):
            return faults
        # Checkpoint statistics lag a few seconds behind; by then the TaskManager is still
        # starting, so no newer checkpoint has pushed these out of the history.
        self._sleep_until(faults[-1].at + 4.0)
        out = []
        for fault in faults:
            if fault.kind == "taskmanager-kill":
                with contextlib.suppress(Exception):
                    fault = dataclasses.replace(
                        fault, during_checkpoint=checkpoint_spanning(self.stack.flink, self.job_id, fault.at_ms))
            out.append(fault)
        return out

    def _kill_python_worker(self) -> Fault:
        # After a restart the workers come up with the tasks: give them the time to.
        deadline = time.monotonic() + 60
        while not python_workers(self.stack, 0) and time.monotonic() < deadline:
            time.sleep(0.5)
        return kill_python_worker(self.stack, 0)

    @staticmethod
    def _sleep_until(moment: float) -> None:
        delay = moment - time.monotonic()
        if delay > 0:
            time.sleep(delay)
