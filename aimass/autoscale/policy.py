"""The autoscaler's decision: a pure function of recorded samples, unit-tested on series.

Hysteresis, so that the job never flaps:

* separate thresholds up and down (``scale_up_*`` well above ``scale_down_*``);
* a condition counts only when it holds in ``sustain_samples`` consecutive samples taken at the
  current parallelism after the last change (a spike shorter than that is ignored);
* a cool-down of ``cooldown_s`` after any change, or any refused attempt, with no decision at all;
* never below ``min_parallelism`` or above ``max_parallelism``;
* never down while the lag grows, nor when the busiest subtask would be busy above
  ``scale_up_busy`` at the lower parallelism (that would be scaled straight back up).

Up wins over down: each up signal (lag, busy, latency) fires on its own; down needs every
signal quiet and a known busy figure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from aimass.autoscale.metrics import Sample
from aimass.settings import AutoscaleSettings

Action = Literal["up", "down", "hold"]


@dataclass(frozen=True)
class Decision:
    """What to do now, and why (one log line's worth)."""

    action: Action
    target: int
    """The parallelism to run at: the current one for ``hold``."""
    reason: str


def _next_up(current: int, s: AutoscaleSettings) -> int:
    return min(s.max_parallelism, current * 2 if s.step == "double" else current + 1)


def _next_down(current: int, s: AutoscaleSettings) -> int:
    return max(s.min_parallelism, current // 2 if s.step == "double" else current - 1)


def _fmt(values: Sequence[float | int | None], spec: str) -> str:
    return " ".join("-" if v is None else format(v, spec) for v in values)


def _sustained(
    window: Sequence[Sample], get: Callable[[Sample], float | int | None], holds: Callable[[float], bool]
) -> bool:
    values = [get(s) for s in window]
    return all(v is not None and holds(v) for v in values)


def _lag_growing(window: Sequence[Sample]) -> bool:
    """True when the newest sample's lag grows, or the lag ended the window above where it began."""
    latest = window[-1]
    if latest.lag_growth_per_s is not None and latest.lag_growth_per_s > 0:
        return True
    first, last = window[0].lag, latest.lag
    return first is not None and last is not None and last > first


def decide(
    history: Sequence[Sample], current: int, last_change_at: float | None, now: float, settings: AutoscaleSettings
) -> Decision:
    """The decision for a job running at ``current`` given the samples so far (oldest first).

    Args:
        history: Samples, oldest first; only the newest ones at ``current`` since the last change count.
        current: The job's parallelism now.
        last_change_at: When the last rescale was made or refused (same clock as ``Sample.at``), or None.
        now: The time of the decision.
        settings: Thresholds, bounds, cool-down and step.
    """
    s = settings
    if current > s.max_parallelism:
        return Decision("down", s.max_parallelism, f"parallelism {current} is above the maximum {s.max_parallelism}")
    if current < s.min_parallelism:
        return Decision("up", s.min_parallelism, f"parallelism {current} is below the minimum {s.min_parallelism}")
    if last_change_at is not None and now - last_change_at < s.cooldown_s:
        left = s.cooldown_s - (now - last_change_at)
        return Decision("hold", current, f"cool-down after the last change, {left:.0f}s left")

    window: list[Sample] = []
    for sample in reversed(history):
        if sample.parallelism != current or (last_change_at is not None and sample.at <= last_change_at):
            break
        window.append(sample)
        if len(window) == s.sustain_samples:
            break
    window.reverse()
    if len(window) < s.sustain_samples:
        return Decision(
            "hold", current, f"{len(window)}/{s.sustain_samples} samples at parallelism {current} so far"
        )

    n = s.sustain_samples
    up_reasons = []
    if _sustained(window, lambda x: x.lag, lambda v: v >= s.scale_up_lag):
        up_reasons.append(f"lag >= {s.scale_up_lag} for {n} samples ({_fmt([x.lag for x in window], 'd')})")
    if _sustained(window, lambda x: x.busy, lambda v: v >= s.scale_up_busy):
        up_reasons.append(f"busy >= {s.scale_up_busy:.2f} for {n} samples ({_fmt([x.busy for x in window], '.2f')})")
    if s.scale_up_latency_ms > 0 and _sustained(window, lambda x: x.latency_ms, lambda v: v >= s.scale_up_latency_ms):
        up_reasons.append(
            f"p90 latency >= {s.scale_up_latency_ms:.0f} ms for {n} samples "
            f"({_fmt([x.latency_ms for x in window], '.0f')})"
        )
    if up_reasons:
        if current >= s.max_parallelism:
            return Decision("hold", current, f"at the maximum {s.max_parallelism} although " + "; ".join(up_reasons))
        return Decision("up", _next_up(current, s), "; ".join(up_reasons))

    quiet_lag = _sustained(window, lambda x: x.lag, lambda v: v <= s.scale_down_lag)
    quiet_busy = _sustained(window, lambda x: x.busy, lambda v: v <= s.scale_down_busy)
    lags, busies = _fmt([x.lag for x in window], "d"), _fmt([x.busy for x in window], ".2f")
    if not (quiet_lag and quiet_busy):
        return Decision("hold", current, f"within the band (lag {lags}; busy {busies})")
    if current <= s.min_parallelism:
        return Decision("hold", current, f"quiet at the minimum {s.min_parallelism} (lag {lags}; busy {busies})")
    if _lag_growing(window):
        return Decision("hold", current, f"quiet but the lag grows ({lags}), not scaling down")
    target = _next_down(current, s)
    busiest = max(x.busy or 0.0 for x in window)
    projected = busiest * current / target
    if projected >= s.scale_up_busy:
        return Decision(
            "hold", current,
            f"quiet, but at {target} the busiest subtask would be ~{projected:.2f} busy (>= {s.scale_up_busy:.2f})",
        )
    latency = [x.latency_ms for x in window]
    latency_note = f"; p90 latency {_fmt(latency, '.0f')} ms" if any(v is not None for v in latency) else ""
    return Decision(
        "down", target,
        f"lag <= {s.scale_down_lag} and busy <= {s.scale_down_busy:.2f} for {n} samples "
        f"(lag {lags}; busy {busies}{latency_note}); ~{projected:.2f} busy expected at {target}",
    )

