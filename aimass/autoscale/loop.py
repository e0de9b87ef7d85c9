"""The autoscaler's loop: sample, decide, rescale, log one line per decision.

Opt-in: it runs only while ``aimass autoscale`` runs. A rescale it cannot make (not enough
task slots, no running job, a timeout) is logged as a decision not taken and starts the
cool-down like a change would, so a missing slot is not asked for at every interval.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from aimass.autoscale.metrics import MetricsCollector, NoJobError, Sample
from aimass.autoscale.policy import Decision, decide
from aimass.settings import Settings
from aimass.stack.procs import StackError

Say = Callable[[str], None]
Rescaler = Callable[[Settings, int], object]

HISTORY = 120
"""Samples kept (the policy looks at the newest ``sustain_samples`` of them)."""


@dataclass(frozen=True)
class Step:
    """One decision of the loop and what came of it."""

    sample: Sample
    decision: Decision
    taken: bool
    """True when the job now runs at ``decision.target`` (always False for holds)."""
    detail: str = ""
    """The rescale's duration, or why it was not taken."""


def describe(sample: Sample, decision: Decision) -> str:
    """The log line of a decision: action, parallelism, the metrics, the reason."""
    lag = "-" if sample.lag is None else str(sample.lag)
    trend = "" if sample.lag_growth_per_s is None else f" ({sample.lag_growth_per_s:+.0f}/s)"
    busy = "-" if sample.busy is None else f"{sample.busy:.2f}"
    latency = "-" if sample.latency_ms is None else f"{sample.latency_ms:.0f}ms"
    move = f"{sample.parallelism}->{decision.target}" if decision.action != "hold" else f"{sample.parallelism}"
    stamp = time.strftime("%H:%M:%S", time.localtime(sample.at))
    return (f"{stamp} {decision.action:<4} p={move:<5} lag={lag}{trend} busy={busy} p90={latency} | "
            f"{decision.reason}")


def _rescale(settings: Settings, target: int) -> object:
    from aimass.stack import rescale

    return rescale.rescale(settings, target, timeout_s=settings.autoscale.rescale_timeout_s, say=lambda _: None)


def _ensure_slots(settings: Settings, target: int, say: Say) -> None:
    """Start local TaskManagers until the cluster has ``target`` slots (``add_taskmanagers``)."""
    from aimass.stack.flink import FlinkCluster
    from aimass.stack.local import LocalStack

    overview = FlinkCluster(settings).rest("/overview")
    if int(overview["slots-total"]) >= target:
        return
    wanted = max(int(overview["taskmanagers"]), math.ceil(target / settings.flink.slots))
    say(f"starting TaskManagers for {target} slots: {wanted} TaskManagers of {settings.flink.slots} slots")
    LocalStack(settings, say=say).set_taskmanagers(wanted)


def run(
    settings: Settings,
    say: Say,
    stop_event: threading.Event,
    *,
    once: bool = False,
    dry_run: bool = False,
    collector: MetricsCollector | None = None,
    rescaler: Rescaler = _rescale,
) -> list[Step]:
    """Sample every ``autoscale.interval_s`` and act on each decision until ``stop_event`` is set.

    Args:
        settings: All settings; the policy reads ``settings.autoscale``.
        say: Where the one-line decision log goes.
        stop_event: Set it to stop the loop (it is checked between samples).
        once: Stop after ``sustain_samples`` samples (one interval apart) and the decision on the
            last of them, having acted on it; or at the first sample that cannot be taken.
        dry_run: Log decisions but never rescale.
        collector: The metrics source (a fresh :class:`MetricsCollector` by default).
        rescaler: ``(settings, parallelism)`` -> anything; raises StackError when it cannot.

    Returns:
        Every decision that was not a hold, with whether it was taken.
    """
    policy = settings.autoscale
    own = collector is None
    source = collector or MetricsCollector(settings)
    history: collections.deque[Sample] = collections.deque(maxlen=HISTORY)
    last_change_at: float | None = None
    steps: list[Step] = []
    say(f"autoscaling {settings.job.name!r} between {policy.min_parallelism} and {policy.max_parallelism} "
        f"every {policy.interval_s:g}s (sustain {policy.sustain_samples} samples, cool-down {policy.cooldown_s:g}s"
        f"{', dry run' if dry_run else ''})")
    try:
        while not stop_event.is_set():
            try:
                sample = source.sample()
            except NoJobError as exc:
                say(f"{time.strftime('%H:%M:%S')} wait | {exc}")
                if once:
                    break
                stop_event.wait(policy.interval_s)
                continue
            except Exception as exc:  # noqa: BLE001 - a REST or broker hiccup (kafka-python's errors share
                # no base with OSError): the loop outlives it and samples again at the next interval
                say(f"{time.strftime('%H:%M:%S')} wait | metrics not readable: {type(exc).__name__}: {exc}")
                if once:
                    break
                stop_event.wait(policy.interval_s)
                continue
            history.append(sample)
            decision = decide(history, sample.parallelism, last_change_at, sample.at, policy)
            say(describe(sample, decision))
            if decision.action != "hold":
                steps.append(_act(settings, decision, sample, say, dry_run, rescaler))
                last_change_at = time.time()
            if once and len(history) >= policy.sustain_samples:
                break
            stop_event.wait(policy.interval_s)
    finally:
        if own:
            source.close()
    return steps


def _act(settings: Settings, decision: Decision, sample: Sample, say: Say, dry_run: bool,
         rescaler: Rescaler) -> Step:
    if dry_run:
        say(f"  not taken: dry run ({sample.parallelism}->{decision.target})")
        return Step(sample, decision, False, "dry run")
    started = time.monotonic()
    try:
        if decision.action == "up" and settings.autoscale.add_taskmanagers:
            _ensure_slots(settings, decision.target, say)
        rescaler(settings, decision.target)
    except StackError as exc:  # RescaleError included: e.g. not enough task slots
        say(f"  not taken: {exc}")
        return Step(sample, decision, False, str(exc))
    except OSError as exc:
        say(f"  not taken: Flink REST API not answering ({exc})")
        return Step(sample, decision, False, str(exc))
    detail = f"{time.monotonic() - started:.1f}s"
    say(f"  rescaled {sample.parallelism}->{decision.target} in {detail}; cool-down "
        f"{settings.autoscale.cooldown_s:g}s")
    return Step(sample, decision, True, detail)
