"""The autoscaler's policy on recorded metric series and on a small closed-loop model of the job."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from aimass.autoscale.metrics import Sample, growth
from aimass.autoscale.policy import Decision, decide
from aimass.settings import AutoscaleSettings, Settings, SettingsError

POLICY = AutoscaleSettings(min_parallelism=1, max_parallelism=4, interval_s=5, cooldown_s=60, sustain_samples=3)

Row = tuple[int | None, float | None, float | None]
"""(lag, busy, p90 latency ms) of one sample."""

# Recorded at parallelism 1, one sample every 5 s: traffic climbing from ~100 to ~900 requests/s.
LOAD_RAMP: list[Row] = [
    (0, 0.18, 41), (0, 0.34, 44), (12, 0.51, 58), (45, 0.66, 95), (310, 0.82, 420),
    (920, 0.90, 1240), (1830, 0.95, 2510), (2650, 0.97, 3890), (3540, 0.98, 5230), (4710, 0.98, 6840),
]
# One burst of 2,500 requests, absorbed in ~10 s.
SHORT_SPIKE: list[Row] = [
    (0, 0.29, 40), (3, 0.31, 42), (2480, 0.96, 1900), (2610, 0.97, 3100), (60, 0.40, 380), (0, 0.30, 45),
    (0, 0.28, 41), (2, 0.30, 43),
]
# Load sitting at the up thresholds: every other sample just above, the others just below.
NEAR_THRESHOLD: list[Row] = [
    (1890, 0.78, 900), (2110, 0.83, 1100), (1950, 0.79, 950), (2060, 0.84, 1080), (1920, 0.77, 930),
    (2090, 0.82, 1120), (1870, 0.79, 890), (2130, 0.85, 1150), (1990, 0.78, 970), (2040, 0.81, 1010),
    (1900, 0.79, 905), (2080, 0.83, 1090),
] * 3
# At parallelism 2 after a burst: the backlog drains, the subtasks go idle.
DRAINED_BACKLOG: list[Row] = [
    (8100, 0.96, 9200), (6050, 0.95, 8100), (4020, 0.91, 6300), (1980, 0.88, 4100), (510, 0.61, 1500),
    (80, 0.27, 160), (22, 0.21, 60), (0, 0.16, 44), (0, 0.15, 43), (0, 0.15, 41), (0, 0.14, 40),
]
# Lag small but climbing and the subtasks idle: the job is starved or stuck (not a reason to shrink).
CREEPING_LAG: list[Row] = [(5, 0.12, 40), (18, 0.11, 41), (37, 0.10, 39), (58, 0.12, 40), (81, 0.11, 42)]


def recorded(rows: Sequence[Row], parallelism: int, start: float = 1000.0, interval: float = 5.0) -> list[Sample]:
    """Samples of a recorded series, with the lag growth computed as the collector does."""
    out: list[Sample] = []
    for i, (lag, busy, latency) in enumerate(rows):
        at = start + i * interval
        out.append(Sample(at, lag, growth(out[-1] if out else None, at, lag), busy, latency, parallelism))
    return out


def replay(samples: Sequence[Sample], current: int, policy: AutoscaleSettings = POLICY,
           last_change_at: float | None = None) -> list[Decision]:
    """The decision after each sample of a series recorded at one parallelism (no rescale acted on)."""
    return [decide(samples[: i + 1], current, last_change_at, s.at, policy) for i, s in enumerate(samples)]


def simulate(demand: Sequence[float], policy: AutoscaleSettings = POLICY, start: int = 1,
             rate: float = 500.0, pause_s: float = 10.0) -> tuple[list[tuple[float, int]], list[Decision]]:
    """Close the loop on a model of the job: each subtask serves ``rate`` requests/s.

    ``demand[i]`` is the offered load in subtasks' worth during sample ``i``; above the
    parallelism a backlog builds, below it drains; a rescale pauses the job ``pause_s``.
    Returns the changes made (time, new parallelism) and every decision.
    """
    p, lag, at = start, 0.0, 0.0
    history: list[Sample] = []
    changes: list[tuple[float, int]] = []
    decisions: list[Decision] = []
    last_change: float | None = None
    for load in demand:
        at += policy.interval_s
        lag = max(0.0, lag + (load - p) * rate * policy.interval_s)
        busy = min(1.0, load / p) if lag == 0 else 1.0
        latency = 40 + lag / (p * rate) * 1000
        history.append(Sample(at, int(lag), growth(history[-1] if history else None, at, int(lag)), busy, latency, p))
        decision = decide(history, p, last_change, at, policy)
        decisions.append(decision)
        if decision.action != "hold":
            p, last_change = decision.target, at
            changes.append((at, p))
            lag += load * rate * pause_s
    return changes, decisions


def actions(decisions: Sequence[Decision]) -> list[str]:
    return [d.action for d in decisions]


def test_scales_up_on_busy_sustained_for_three_samples_of_a_load_ramp() -> None:
    decisions = replay(recorded(LOAD_RAMP, 1), 1)
    first = actions(decisions).index("up")
    assert first == 6  # busy >= 0.8 from sample 4: samples 4, 5, 6
    assert decisions[first].target == 2
    assert "busy >= 0.80 for 3 samples (0.82 0.90 0.95)" in decisions[first].reason
    assert actions(decisions)[:first] == ["hold"] * first


def test_lag_alone_scales_up_when_busy_is_not_reported() -> None:
    rows = [(lag, None, None) for lag, _, _ in LOAD_RAMP]
    decisions = replay(recorded(rows, 1), 1)
    assert actions(decisions).index("up") == 9  # lag >= 2000 in samples 7, 8, 9 (6 has 1830)
    assert "lag >= 2000" in decisions[9].reason and "busy" not in decisions[9].reason


def test_latency_scales_up_and_zero_turns_it_off() -> None:
    rows = [(0, 0.5, latency) for latency in (4000, 5200, 6100, 7400)]
    samples = recorded(rows, 1)
    assert decide(samples, 1, None, samples[-1].at, POLICY).action == "up"
    assert decide(samples, 1, None, samples[-1].at, replace(POLICY, scale_up_latency_ms=0)).action == "hold"


def test_a_spike_shorter_than_sustain_samples_changes_nothing() -> None:
    assert set(actions(replay(recorded(SHORT_SPIKE, 1), 1))) == {"hold"}


def test_load_oscillating_near_the_threshold_never_flaps() -> None:
    decisions = replay(recorded(NEAR_THRESHOLD, 2), 2)
    assert set(actions(decisions)) == {"hold"}, [d.reason for d in decisions if d.action != "hold"]
    changes, _ = simulate([0.9 if i % 2 else 0.75 for i in range(120)], start=1)
    assert changes == [], changes  # 0.9 and 0.75 subtasks alternating: never three in a row above 0.8


def test_square_wave_load_changes_at_most_once_per_cooldown() -> None:
    # 10 minutes of load switching between 1.5 and 0.3 subtasks' worth every 40 s.
    demand = [1.5 if (i // 8) % 2 == 0 else 0.3 for i in range(120)]
    changes, _ = simulate(demand, start=1)
    gaps = [b[0] - a[0] for a, b in zip(changes, changes[1:], strict=False)]
    assert len(changes) <= 600 / POLICY.cooldown_s
    assert all(gap >= POLICY.cooldown_s for gap in gaps), changes
    assert all(1 <= p <= 2 for _, p in changes)  # 1.5 is 0.75 busy at 2: never a third subtask


def test_steady_load_settles_after_one_change() -> None:
    # 0.85 subtasks' worth: too busy for 1, ~0.43 busy at 2. With a loose down threshold (0.45)
    # only the projected-busy guard keeps it from scaling straight back down.
    loose = replace(POLICY, scale_down_busy=0.45)
    changes, decisions = simulate([0.85] * 200, policy=loose, start=1)
    assert [p for _, p in changes] == [2]
    assert any("would be ~0.8" in d.reason for d in decisions), {d.reason for d in decisions}


def test_drained_backlog_scales_down_only_once_quiet_for_three_samples() -> None:
    decisions = replay(recorded(DRAINED_BACKLOG, 2), 2, replace(POLICY, max_parallelism=2))
    assert actions(decisions)[:4] == ["hold"] * 4
    assert "at the maximum 2 although lag >= 2000" in decisions[2].reason
    first = actions(decisions).index("down")
    assert first == 7  # lag <= 100 and busy <= 0.3 in samples 5, 6, 7
    assert decisions[first].target == 1
    assert "~0.54 busy expected at 1" in decisions[first].reason


def test_does_not_scale_down_while_lag_grows() -> None:
    decisions = replay(recorded(CREEPING_LAG, 2), 2)
    assert set(actions(decisions)) == {"hold"}
    assert "the lag grows" in decisions[-1].reason


def test_cooldown_holds_every_signal_then_lets_them_count_again() -> None:
    samples = recorded(LOAD_RAMP, 1)
    last_change = samples[6].at - 10
    decision = decide(samples[:7], 1, last_change, samples[6].at, POLICY)
    assert decision == Decision("hold", 1, "cool-down after the last change, 50s left")
    later = decide(samples, 1, samples[0].at - 60, samples[-1].at, POLICY)
    assert later.action == "up"


def test_samples_from_before_the_last_change_do_not_count() -> None:
    samples = recorded(LOAD_RAMP, 1)
    changed_at = samples[-2].at - 0.5  # only the newest two samples are after the change
    decision = decide(samples, 1, changed_at, changed_at + POLICY.cooldown_s, POLICY)
    assert decision == Decision("hold", 1, "2/3 samples at parallelism 1 so far")


def test_samples_at_another_parallelism_do_not_count() -> None:
    samples = recorded(LOAD_RAMP, 1)
    mixed = [*samples[:-1], replace(samples[-1], parallelism=2)]
    assert decide(mixed, 2, None, mixed[-1].at, POLICY).reason.startswith("1/3 samples")


def test_never_beyond_min_or_max() -> None:
    hot = recorded(LOAD_RAMP, 4)
    assert decide(hot, 4, None, hot[-1].at, POLICY).action == "hold"
    idle = recorded(DRAINED_BACKLOG[-4:], 1)
    assert decide(idle, 1, None, idle[-1].at, POLICY) == Decision(
        "hold", 1, "quiet at the minimum 1 (lag 0 0 0; busy 0.15 0.15 0.14)"
    )
    doubling = replace(POLICY, step="double", max_parallelism=3)
    hot2 = recorded(LOAD_RAMP, 2)
    assert decide(hot2, 2, None, hot2[-1].at, doubling).target == 3  # 4 would pass the maximum


def test_a_parallelism_outside_the_bounds_is_brought_back() -> None:
    samples = recorded(DRAINED_BACKLOG, 6)
    assert decide(samples, 6, None, samples[-1].at, POLICY) == Decision(
        "down", 4, "parallelism 6 is above the maximum 4"
    )
    bounded = replace(POLICY, min_parallelism=2)
    assert decide(samples, 1, None, samples[-1].at, bounded).target == 2


def test_double_step_doubles_and_halves() -> None:
    doubling = replace(POLICY, step="double", max_parallelism=8)
    hot = recorded(LOAD_RAMP, 2)
    assert decide(hot, 2, None, hot[-1].at, doubling) == Decision("up", 4, decide(hot, 2, None, hot[-1].at,
                                                                                  doubling).reason)
    idle = recorded(DRAINED_BACKLOG, 8)
    down = decide(idle, 8, None, idle[-1].at, doubling)
    assert (down.action, down.target) == ("down", 4)


def test_unknown_busy_never_scales_down() -> None:
    rows = [(0, None, 40)] * 5
    samples = recorded(rows, 2)
    assert decide(samples, 2, None, samples[-1].at, POLICY).action == "hold"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AIMASS_AUTOSCALE_MIN_PARALLELISM": "3", "AIMASS_AUTOSCALE_MAX_PARALLELISM": "2"}, "MIN_PARALLELISM=3"),
        ({"AIMASS_AUTOSCALE_MAX_PARALLELISM": "200"}, "AIMASS_JOB_MAX_PARALLELISM=128"),
        ({"AIMASS_AUTOSCALE_SCALE_DOWN_BUSY": "0.8"}, "hysteresis"),
        ({"AIMASS_AUTOSCALE_SCALE_DOWN_LAG": "5000"}, "hysteresis"),
        ({"AIMASS_AUTOSCALE_SUSTAIN_SAMPLES": "0"}, "SUSTAIN_SAMPLES"),
        ({"AIMASS_AUTOSCALE_STEP": "triple"}, "one, double"),
    ],
)
def test_settings_refuse_bounds_and_thresholds_without_a_gap(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.load(env=env)
