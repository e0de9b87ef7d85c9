"""The systems under test, behind one small interface.

Every Kafka-fed system reads the run's requests topic and writes results keyed by request
id to the run's results topic, on the bench stack's broker. ``raw-ort`` has no Kafka: it is
the limit, measured in one process (:mod:`bench.systems.raw_ort`).

Public API: :data:`SYSTEMS` (name -> description), :func:`expand` (``--systems`` to names),
:func:`make` (a name to a :class:`System`), :class:`System`, :class:`WorkerSystem`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aimass.settings import PROJECT_ROOT, Settings

SYSTEMS: dict[str, str] = {
    "raw-ort": "ONNX Runtime alone, one process, 1 intra-op thread (the limit)",
    "plain-loop": "confluent-kafka consume -> batch -> ONNX Runtime -> produce, at-least-once",
    "quix": "Quix Streams, one record per call, exactly-once",
    "aimass-eo-p1": "AI Mass, exactly-once, parallelism 1",
    "aimass-eo-p2": "AI Mass, exactly-once, parallelism 2",
    "aimass-alo-p1": "AI Mass, at-least-once, parallelism 1",
    "aimass-alo-p2": "AI Mass, at-least-once, parallelism 2",
    "aimass-eo-p1-shadow10": "AI Mass, exactly-once, parallelism 1, 10% of requests also run on a shadow version",
    "aimass-eo-p1-fifo": "AI Mass, exactly-once, parallelism 1, scheduler window off (job.inflight_batches=0)",
}
#: Not in "all" or "aimass": measured on request (``--systems aimass-eo-p1-shadow10``).
_EXTRA = {"aimass-eo-p1-shadow10", "aimass-eo-p1-fifo"}
GROUPS = {"all": [s for s in SYSTEMS if s not in _EXTRA],
          "aimass": [s for s in SYSTEMS if s.startswith("aimass-") and s not in _EXTRA],
          "peers": ["plain-loop", "quix"]}


def expand(spec: str) -> list[str]:
    """``--systems`` value (names and groups, comma-separated) to system names, in table order."""
    wanted: set[str] = set()
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        if item in GROUPS:
            wanted.update(GROUPS[item])
        elif item in SYSTEMS:
            wanted.add(item)
        else:
            raise ValueError(f"unknown system {item!r}: choose from {', '.join([*SYSTEMS, *GROUPS])}")
    return [name for name in SYSTEMS if name in wanted]


@dataclass(frozen=True)
class Run:
    """What one system serves in one run: settings with the run's topics, group and model."""

    name: str
    model: str
    settings: Settings
    max_batch_size: int
    max_delay_ms: int
    log_dir: Path


class System(Protocol):
    """A Kafka-fed system under test."""

    def start(self, run: Run) -> None:
        """Start serving ``run`` (returns once started; results may come later)."""

    def pids(self) -> list[int]:
        """Root pids of the processes whose CPU and memory count for this system."""

    def stop(self) -> None:
        """Stop serving; leaves nothing running."""


class WorkerSystem:
    """A system that is one Python process running ``python -m <module>`` of this package."""

    def __init__(self, module: str, args: Mapping[str, str] | None = None) -> None:
        self.module = module
        self.args = dict(args or {})
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, run: Run) -> None:
        argv = [sys.executable, "-m", self.module, "--group", f"bench-{run.name}",
                "--max-batch-size", str(run.max_batch_size), "--max-delay-ms", str(run.max_delay_ms)]
        for key, value in self.args.items():
            argv += [f"--{key}", value]
        env = {**os.environ, **run.settings.as_env(), "PYTHONPATH": str(PROJECT_ROOT)}
        run.log_dir.mkdir(parents=True, exist_ok=True)
        with open(run.log_dir / f"{run.name}.log", "ab") as log:
            self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,  # noqa: S603
                                         stdin=subprocess.DEVNULL, cwd=PROJECT_ROOT)

    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc is not None and self.proc.poll() is None else []

    def exited(self) -> int | None:
        """The worker's exit code if it has ended, else None."""
        return None if self.proc is None else self.proc.poll()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class AimassSystem:
    """The AI Mass job on the bench stack's Flink cluster: submitted per run, cancelled after."""

    def __init__(self, delivery: str, parallelism: int, shadow_fraction: float = 0.0, window: bool = True) -> None:
        self.delivery = delivery
        self.window = window
        self.parallelism = parallelism
        self.shadow_fraction = shadow_fraction
        self.shadowed: str | None = None
        self.settings: Settings | None = None

    def overrides(self, run: Run) -> dict[str, str]:
        """The ``--set`` overrides of the job for ``run``."""
        k = run.settings.kafka
        return {
            "kafka.requests_topic": k.requests_topic,
            "kafka.results_topic": k.results_topic,
            "kafka.dead_letter_topic": k.dead_letter_topic,
            "job.delivery": self.delivery,
            "job.parallelism": str(self.parallelism),
            "job.consumer_group": f"bench-{run.name}",
            "job.transactional_id_prefix": f"bench-{run.name}",
            "engine.use_gpu": "true" if run.settings.engine.use_gpu else "false",
            **({} if self.window else {"job.inflight_batches": "0"}),
        }

    def start(self, run: Run) -> None:
        from dataclasses import replace

        from aimass.stack import jobs

        overrides = self.overrides(run)
        job = replace(run.settings.job, delivery=self.delivery, parallelism=self.parallelism,  # type: ignore[arg-type]
                      consumer_group=overrides["job.consumer_group"],
                      transactional_id_prefix=overrides["job.transactional_id_prefix"])
        self.settings = replace(run.settings, job=job)
        jobs.cancel(self.settings)  # a job of the same name left by an interrupted run
        if self.shadow_fraction:
            self._shadow(run)
        jobs.submit(self.settings, overrides)

    def _shadow(self, run: Run) -> None:
        """Shadow the run's model with another of its versions (the job syncs models/ at submit,
        so publish that first), effective at once."""
        from aimass.control.admin import ControlAdmin
        from aimass.control.commands import SetShadow
        from aimass.serving.models import ModelRepository

        assert self.settings is not None
        repository = ModelRepository(self.settings.paths.models_dir)
        primary = repository.resolve(run.model).version
        others = [v for v in repository.versions(run.model) if v != primary]
        if not others:
            raise ValueError(f"{run.model} has no second version to shadow with")
        with ControlAdmin(self.settings, activation_ms=0) as admin:
            list(admin.sync(self.settings.paths.models_dir, at_submit=True))
            admin.publish(SetShadow(run.model, others[-1], self.shadow_fraction))
        self.shadowed = run.model

    def pids(self) -> list[int]:
        if self.settings is None:
            return []
        from aimass.stack.flink import FlinkCluster

        found = [tm.pid() for tm in FlinkCluster(self.settings).taskmanagers()]
        return [pid for pid in found if pid is not None]

    def stop(self) -> None:
        if self.settings is not None:
            from aimass.stack import jobs

            jobs.cancel(self.settings)
            if self.shadowed is not None:
                from aimass.control.admin import ControlAdmin
                from aimass.control.commands import SetShadow

                with ControlAdmin(self.settings, activation_ms=0) as admin:
                    admin.publish(SetShadow(self.shadowed, None))
                self.shadowed = None


def make(name: str) -> System:
    """The :class:`System` named ``name`` (not ``raw-ort``, which is not Kafka-fed)."""
    if name == "plain-loop":
        return WorkerSystem("bench.systems.plain_loop")
    if name == "quix":
        return WorkerSystem("bench.systems.quix_app", {"guarantee": "exactly-once"})
    if name.startswith("aimass-"):
        _, delivery, parallelism, *extra = name.split("-")
        shadow = float(extra[0].removeprefix("shadow")) / 100 if extra and extra[0].startswith("shadow") else 0.0
        return AimassSystem("exactly-once" if delivery == "eo" else "at-least-once", int(parallelism[1:]), shadow,
                            window=extra != ["fifo"])
    raise ValueError(f"no Kafka-fed system {name!r}")
