"""The soak's options and its job: settings of a job run, submitting and cancelling it through
the project's own stack code (:mod:`aimass.stack.jobs`), and the sustained-rate measurement.

The job is touched only through ``jobs.submit``/``jobs.cancel`` and ``--set`` overrides, so the
soak runs whatever the job graph is.
"""

from __future__ import annotations

import dataclasses
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from aimass.settings import PROJECT_ROOT, Delivery, Settings
from aimass.stack.local import Say
from bench.driver import Collector, drain_rate, preload, producer
from bench.stack import create_topics, delete_topics, run_settings
from bench.workload import Workload

SEED = 20240601
WARMUP_PHASE, MEASURE_PHASE, SOAK_PHASE = 0, 1, 200
JOB_NAME = "aimass-soak"
DEAD = ("FAILED", "CANCELED", "FINISHED")


class SoakError(RuntimeError):
    """The soak could not run to its end (the message says why)."""


@dataclass(frozen=True)
class SoakOptions:
    """What to soak, how hard and for how long."""

    duration_s: float = 1800.0
    share: float = 0.5
    """Offered rate as a share of the measured sustained rate (ignored with ``rate``)."""
    rate: float | None = None
    """Absolute offered rate, requests/s; skips the sustained-rate measurement."""
    model: str = "digits"
    graph: Path | None = None
    """A graph file deployed before the soak; requests go to the graph (taking ``model``'s inputs)."""
    delivery: Delivery = "exactly-once"
    parallelism: int = 1
    interval_s: float = 5.0
    overrides: dict[str, str] = field(default_factory=dict)
    """``section.field`` settings passed to the job (``--set``), e.g. ``job.dedup_ttl_s``."""
    out: Path = PROJECT_ROOT / "bench" / "out" / "soak"
    seed: int = SEED
    measure_s: float = 30.0
    """Length the sustained-rate drain aims at."""
    warmup_requests: int = 2000
    start_timeout_s: float = 300.0
    progress_every_s: float = 15.0
    keep_topics: bool = False
    smoke: bool = False


def check_overrides(overrides: dict[str, str]) -> None:
    """Refuse a ``section.field`` that names no setting (the job would silently ignore it)."""
    defaults = Settings()
    for key in overrides:
        section, _, name = key.partition(".")
        group = getattr(defaults, section, None)
        if not dataclasses.is_dataclass(group) or name not in {f.name for f in dataclasses.fields(group)}:
            raise ValueError(f"--set {key}=...: no such setting (see aimass/settings.py)")


def job_settings(base: Settings, run_name: str, options: SoakOptions) -> tuple[Settings, dict[str, str]]:
    """Settings of one job run (own topics, group, transactional ids) and the ``--set`` overrides of its job."""
    k = run_settings(base, run_name).kafka
    sets = {
        "kafka.requests_topic": k.requests_topic, "kafka.results_topic": k.results_topic,
        "kafka.dead_letter_topic": k.dead_letter_topic, "job.name": JOB_NAME, "job.delivery": options.delivery,
        "job.parallelism": str(options.parallelism), "job.consumer_group": f"bench-{run_name}",
        "job.transactional_id_prefix": f"bench-{run_name}",
        "engine.use_gpu": "true" if base.engine.use_gpu else "false", **options.overrides,
    }
    return Settings.load(env=base.as_env(), overrides=sets), sets


def start_job(settings: Settings, sets: dict[str, str]) -> str:
    """Submit the job through the project's own submit code; returns its id once RUNNING."""
    from aimass.stack import jobs

    jobs.cancel(settings)  # one left by an interrupted soak
    return jobs.submit(settings, sets, timeout_s=300)


def stop_job(settings: Settings) -> None:
    """Cancel the soak's job (best effort: the stack may be going down)."""
    from aimass.stack import jobs

    try:
        jobs.cancel(settings)
    except Exception as exc:  # noqa: BLE001 - cleaning up must not hide the run's own error
        print(f"[soak] could not cancel {JOB_NAME}: {exc}", file=sys.stderr)


def measure_rate(base: Settings, options: SoakOptions, workload: Workload, say: Say) -> float:
    """The job's sustained rate: the drain rate of a preloaded backlog (as ``make bench`` takes it)."""
    settings, sets = job_settings(base, f"soak-rate-{uuid.uuid4().hex[:6]}", options)
    k = settings.kafka
    create_topics(settings)
    collector = Collector(k.bootstrap, k.results_topic, k.partitions).start()
    prod = producer(k.bootstrap)
    try:
        warm = preload(prod, k.requests_topic, workload, WARMUP_PHASE, options.warmup_requests)
        say(f"measuring the sustained rate: job starting, {len(warm):,} warm-up requests ...")
        start_job(settings, sets)
        if not collector.wait(WARMUP_PHASE, len(warm), options.start_timeout_s):
            raise SoakError(f"only {collector.per_phase.get(WARMUP_PHASE, 0)} of {len(warm)} warm-up results")
        times = sorted(collector.arrivals[rid] for rid in warm)
        estimate = max(100.0, (len(times) - 1) / max(times[-1] - times[0], 0.1))
        for attempt in range(3):
            count = int(min(2_000_000, max(1000, estimate * options.measure_s * 1.5)))
            ids = preload(prod, k.requests_topic, workload, MEASURE_PHASE + attempt, count)
            loaded = time.monotonic()
            if not collector.wait(MEASURE_PHASE + attempt, count, max(120.0, 4 * count / estimate)):
                raise SoakError(f"the sustained-rate backlog of {count:,} was not served in time")
            rate, start, end = drain_rate(collector, ids, loaded, 0.1)
            if rate is not None and end - start >= 0.5 * options.measure_s:
                say(f"sustained {rate:,.0f} requests/s over {end - start:.1f} s")
                return rate
            estimate = rate if rate is not None else estimate * 4
        raise SoakError("could not measure a sustained rate: raise --measure or give --rate")
    finally:
        stop_job(settings)
        collector.close()
        prod.flush(10)
        if not options.keep_topics:
            delete_topics(settings)
