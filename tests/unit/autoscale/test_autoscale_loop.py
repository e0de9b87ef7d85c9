"""The autoscaler's loop and metric helpers with a scripted collector and rescaler (no stack)."""

from __future__ import annotations

import threading
from dataclasses import replace

from aimass.autoscale.loop import run
from aimass.autoscale.metrics import MetricsCollector, NoJobError, Sample, growth, percentile
from aimass.settings import AutoscaleSettings, Settings
from aimass.stack.rescale import RescaleError

POLICY = AutoscaleSettings(interval_s=0.001, cooldown_s=3600, sustain_samples=2, max_parallelism=4)
SETTINGS = replace(Settings(), autoscale=POLICY)


class Scripted:
    """Hands out samples (or raises) in order, then sets the stop event."""

    def __init__(self, items: list[Sample | Exception], stop: threading.Event) -> None:
        self.items, self.stop, self.closed = list(items), stop, False

    def sample(self) -> Sample:
        item = self.items.pop(0)
        if not self.items:
            self.stop.set()
        if isinstance(item, Exception):
            raise item
        return item

    def close(self) -> None:
        self.closed = True


def hot(at: float, parallelism: int = 1) -> Sample:
    return Sample(at, 5000, 100.0, 0.97, 900.0, parallelism)


def test_sustained_load_rescales_once_then_cools_down() -> None:
    stop, lines, asked = threading.Event(), [], []
    source = Scripted([hot(float(i)) for i in range(6)], stop)
    steps = run(SETTINGS, lines.append, stop, collector=source,  # type: ignore[arg-type]
                rescaler=lambda _s, p: asked.append(p))
    assert asked == [2]
    assert [(s.decision.action, s.decision.target, s.taken) for s in steps] == [("up", 2, True)]
    assert sum("cool-down after the last change" in line for line in lines) == 4
    assert any(line.startswith("  rescaled 1->2 in ") for line in lines)
    assert "lag=5000 (+100/s) busy=0.97 p90=900ms |" in next(line for line in lines if " up " in line)
    assert not source.closed  # a collector handed in is the caller's to close


def test_a_refused_rescale_is_logged_and_starts_the_cooldown() -> None:
    stop, lines = threading.Event(), []

    def refuse(_settings: Settings, parallelism: int) -> None:
        raise RescaleError(f"parallelism {parallelism} needs {parallelism} task slots but the cluster has 1")

    source = Scripted([hot(float(i)) for i in range(5)], stop)
    steps = run(SETTINGS, lines.append, stop, collector=source, rescaler=refuse)  # type: ignore[arg-type]
    assert [(s.decision.action, s.taken) for s in steps] == [("up", False)]
    assert "  not taken: parallelism 2 needs 2 task slots but the cluster has 1" in lines
    assert sum("cool-down after the last change" in line for line in lines) == 3


def test_missing_job_and_unreadable_metrics_are_waited_out() -> None:
    stop, lines, asked = threading.Event(), [], []
    items: list[Sample | Exception] = [NoJobError("no running job named 'x'"), OSError("connection refused"),
                                       hot(1.0), hot(2.0)]
    run(SETTINGS, lines.append, stop, collector=Scripted(items, stop),  # type: ignore[arg-type]
        rescaler=lambda _s, p: asked.append(p))
    assert any(line.endswith("wait | no running job named 'x'") for line in lines)
    assert any("metrics not readable: OSError: connection refused" in line for line in lines)
    assert asked == [2]


def test_once_stops_after_sustain_samples_and_dry_run_never_rescales() -> None:
    stop, lines, asked = threading.Event(), [], []
    source = Scripted([hot(float(i)) for i in range(10)], threading.Event())
    steps = run(SETTINGS, lines.append, stop, once=True, dry_run=True, collector=source,  # type: ignore[arg-type]
                rescaler=lambda _s, p: asked.append(p))
    assert len(source.items) == 8 and asked == []
    assert [(s.decision.action, s.taken, s.detail) for s in steps] == [("up", False, "dry run")]


def test_growth_and_percentile() -> None:
    first = Sample(10.0, 100, None, None, None, 1)
    assert growth(first, 15.0, 600) == 100.0
    assert growth(None, 15.0, 600) is None and growth(first, 15.0, None) is None
    assert percentile([], 0.9) is None
    assert percentile([float(v) for v in range(1, 11)], 0.9) == 9.0
    assert percentile([5.0], 0.9) == 5.0


class FakeRest:
    """Answers the per-subtask time counters from a script: one (busy, idle, backpressured) per subtask."""

    def __init__(self) -> None:
        self.counters: list[tuple[float, float, float]] = []

    def rest(self, path: str) -> list[dict[str, str]]:
        index = int(path.split("/subtasks/")[1].split("/")[0])
        names = ("accumulateBusyTimeMs", "accumulateIdleTimeMs", "accumulateBackPressuredTimeMs")
        return [{"id": n, "value": str(v)} for n, v in zip(names, self.counters[index], strict=True)]


def test_busy_is_the_busiest_subtasks_share_of_the_interval_from_flinks_counters() -> None:
    collector = MetricsCollector(Settings())
    fake = FakeRest()
    collector.cluster = fake  # type: ignore[assignment]
    fake.counters = [(1000, 9000, 0), (500, 9500, 0)]
    assert collector.busy("job", "v", 2) is None  # no baseline yet
    fake.counters = [(1500, 13500, 0), (3500, 10500, 1000)]  # 5 s later: 10% and 60% busy
    assert collector.busy("job", "v", 2) == 0.6
    assert collector.busy("job", "v", 2) == 0.6  # the fetcher has not refreshed: same figure
    fake.counters = [(10, 90, 0), (20, 80, 0)]  # the job restarted (a rescale): counters from zero
    assert collector.busy("job", "v", 2) is None
    fake.counters = [(510, 590, 0), (20, 1080, 0)]
    assert collector.busy("job", "v", 2) == 0.5


def test_busy_survives_the_busy_counter_stepping_back_on_a_mostly_idle_task() -> None:
    # Flink derives busy time (wall time less idle and back-pressured) and adds idle time when an
    # idle stretch ends, so on a mostly idle task busy can step back while the task runs on.
    collector = MetricsCollector(Settings())
    fake = FakeRest()
    collector.cluster = fake  # type: ignore[assignment]
    fake.counters = [(2000, 1000, 0)]  # an idle stretch under way: not counted as idle yet
    assert collector.busy("job", "v", 1) is None
    fake.counters = [(1900, 3100, 0)]  # it ended: idle +2100, busy -100 over 2 s
    assert collector.busy("job", "v", 1) == 0.0
    fake.counters = [(2100, 4900, 0)]  # 2 s, 200 ms busy
    assert collector.busy("job", "v", 1) == 0.1
