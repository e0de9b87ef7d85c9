"""``aimass top``: one screen that says whether the job keeps up, refreshed in place.

Each refresh reads the cluster's REST API (job state, busy time per subtask, checkpoints), the
TaskManagers' Prometheus endpoints (the job's metrics: batch sizes, inference time, errors by
status, dead letters by reason) and Kafka (records written to the requests and results
topics, the consumer group's lag, the newest results' end-to-end latency). Rates are the
change since the previous refresh; the first frame has none yet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aimass.autoscale.metrics import MetricsCollector, NoJobError, percentile
from aimass.settings import Settings
from aimass.stack.prometheus import Sample, scrape


@dataclass(frozen=True)
class Frame:
    """What one refresh saw."""

    at: float
    job: str
    """``<job id> <state>``, or why there is none."""
    requests_per_s: float | None = None
    results_per_s: float | None = None
    backlog: int | None = None
    """Requests on the topic not yet read by the job, plus those waiting in its scheduler."""
    batch_p50: float | None = None
    inference_p50_ms: float | None = None
    inference_p99_ms: float | None = None
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    errors: dict[str, float] = field(default_factory=dict)
    """Not-OK results since the previous refresh, by status."""
    dead_letters: dict[str, float] = field(default_factory=dict)
    """Dead letters since the previous refresh, by reason."""
    busy: dict[int, float] = field(default_factory=dict)
    """Busy share of each batch-infer subtask."""
    checkpoint_ms: float | None = None
    checkpoints_failed: int | None = None
    problems: tuple[str, ...] = ()


class Top:
    """Takes frames of the running job (call :meth:`close` at the end)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.collector = MetricsCollector(settings)
        self._before: tuple[float, int, int, dict[str, float], dict[str, float]] | None = None

    def close(self) -> None:
        self.collector.close()

    def frame(self) -> Frame:
        """One refresh; never raises for a part that does not answer (it says so instead)."""
        at, problems = time.time(), []
        k = self.settings.kafka
        cluster = self.collector.cluster
        try:
            job_id, vertex_id, parallelism = self.collector.job_vertex()
        except NoJobError as exc:
            return Frame(at, f"no job: {exc}")
        except OSError as exc:
            return Frame(at, f"Flink REST API not answering at {self.settings.flink.rest_url}: {exc}")
        state = str(cluster.rest(f"/jobs/{job_id}").get("state", "?"))
        self.collector.busy(job_id, vertex_id, parallelism)
        busy = self.collector.subtask_busy()
        samples: list[Sample] = []
        for name, url in cluster.metrics_urls().items():
            if name != "jobmanager":
                try:
                    samples += scrape(url, timeout=2)
                except OSError as exc:
                    problems.append(f"{name} metrics: {exc}")
        errors = _by_label(samples, "_results", "status", exclude="OK")
        dead = _by_label(samples, "_dead_letters", "reason")
        requests = results = 0
        backlog = None
        try:
            requests = self.collector.end_offsets(k.requests_topic)
            results = self.collector.end_offsets(k.results_topic)
            lag = self.collector.lag()
            backlog = None if lag is None else lag + self.collector.scheduler_waiting(job_id)
            latencies = self.collector.latencies_ms(self._before[0] if self._before else at - 10, per_partition=200)
        except Exception as exc:  # noqa: BLE001 - a frame says what it could not read
            problems.append(f"Kafka {k.bootstrap}: {exc}")
            latencies = []
        checkpoint_ms = failed = None
        try:
            stats = cluster.rest(f"/jobs/{job_id}/checkpoints")
            completed = (stats.get("latest") or {}).get("completed") or {}
            checkpoint_ms = completed.get("end_to_end_duration")
            failed = int(stats.get("counts", {}).get("failed", 0))
        except OSError as exc:
            problems.append(f"checkpoints: {exc}")
        frame = Frame(
            at, f"{job_id} {state}",
            backlog=backlog,
            batch_p50=_quantile(samples, "_batchSize", "0.5"),
            inference_p50_ms=_ms(_quantile(samples, "_inferenceUs", "0.5")),
            inference_p99_ms=_ms(_quantile(samples, "_inferenceUs", "0.99")),
            latency_p50_ms=percentile(latencies, 0.5),
            latency_p99_ms=percentile(latencies, 0.99),
            busy=busy, checkpoint_ms=checkpoint_ms, checkpoints_failed=failed, problems=tuple(problems),
        )
        if self._before is not None:
            then, requests_then, results_then, errors_then, dead_then = self._before
            elapsed = max(at - then, 1e-3)
            frame = _replace(frame, requests_per_s=(requests - requests_then) / elapsed,
                             results_per_s=(results - results_then) / elapsed,
                             errors=_delta(errors, errors_then), dead_letters=_delta(dead, dead_then))
        self._before = (at, requests, results, errors, dead)
        return frame


def _ms(micros: float | None) -> float | None:
    return None if micros is None else micros / 1000.0


def _replace(frame: Frame, **changes: Any) -> Frame:
    from dataclasses import replace

    return replace(frame, **changes)


def _by_label(samples: list[Sample], suffix: str, label: str, exclude: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for s in samples:
        value = s.labels.get(label)
        if s.name.endswith(suffix) and value is not None and value != exclude:
            out[value] = out.get(value, 0.0) + s.value
    return out


def _delta(now: dict[str, float], then: dict[str, float]) -> dict[str, float]:
    return {key: value - then.get(key, 0.0) for key, value in now.items() if value - then.get(key, 0.0) > 0}


def _quantile(samples: list[Sample], suffix: str, quantile: str) -> float | None:
    """The mean over subtasks of one quantile of a histogram (subtasks with no data left out)."""
    values = [s.value for s in samples if s.name.endswith(suffix) and s.labels.get("quantile") == quantile
              and s.value == s.value]  # NaN: no data yet
    return sum(values) / len(values) if values else None


def render(frame: Frame, settings: Settings) -> Any:
    """The frame as rich renderables (a header, the figures, per-subtask load, errors)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    def num(value: float | None, unit: str = "", digits: int = 0) -> str:
        return "-" if value is None else f"{value:,.{digits}f}{unit}"

    stamp = time.strftime("%H:%M:%S", time.localtime(frame.at))
    header = Text(f"aimass top  {stamp}  job {frame.job}  ({settings.flink.rest_url})  Ctrl-C to quit", style="bold")
    figures = Table(show_header=False, box=None, pad_edge=False)
    figures.add_column(style="cyan")
    figures.add_column(justify="right")
    figures.add_column(style="cyan")
    figures.add_column(justify="right")
    figures.add_row("requests in /s", num(frame.requests_per_s), "results out /s", num(frame.results_per_s))
    figures.add_row("backlog", num(frame.backlog), "batch size p50", num(frame.batch_p50, "", 1))
    figures.add_row("latency p50", num(frame.latency_p50_ms, " ms"), "latency p99", num(frame.latency_p99_ms, " ms"))
    figures.add_row("inference p50", num(frame.inference_p50_ms, " ms", 1), "inference p99",
                    num(frame.inference_p99_ms, " ms", 1))
    figures.add_row("last checkpoint", num(frame.checkpoint_ms, " ms"), "checkpoints failed (all)",
                    num(frame.checkpoints_failed))
    subtasks = Table(title="batch-infer subtasks", title_justify="left")
    subtasks.add_column("subtask", justify="right")
    subtasks.add_column("busy", justify="right")
    subtasks.add_column("")
    for index, share in frame.busy.items():
        subtasks.add_row(str(index), f"{share * 100:.0f} %", "#" * round(share * 30))
    errors = Table(title="since the last refresh", title_justify="left")
    errors.add_column("error results (status)")
    errors.add_column("count", justify="right")
    errors.add_column("dead letters (reason)")
    errors.add_column("count", justify="right")
    left, right = sorted(frame.errors.items()), sorted(frame.dead_letters.items())
    for i in range(max(len(left), len(right), 1)):
        a = left[i] if i < len(left) else ("", None)
        b = right[i] if i < len(right) else ("", None)
        errors.add_row(a[0] or ("none" if i == 0 else ""), num(a[1]) if a[1] is not None else "",
                       b[0] or ("none" if i == 0 else ""), num(b[1]) if b[1] is not None else "")
    parts: list[Any] = [header, figures, subtasks, errors]
    parts += [Text(f"! {problem}", style="yellow") for problem in frame.problems]
    return Group(*parts)


def run(settings: Settings, interval_s: float = 2.0, once: bool = False) -> int:
    """Refresh in place every ``interval_s`` until Ctrl-C (``once``: two frames, the second
    printed). Ctrl-C ends the view after the frame being read (a second one at once); exit 0."""
    import signal
    import threading

    from rich.console import Console
    from rich.live import Live

    stop = threading.Event()

    def interrupted(signum: int, frame: Any) -> None:
        if stop.is_set():  # a second Ctrl-C: do not wait for the frame in progress
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, interrupted)
    top: Top | None = None
    try:
        console = Console()
        top = Top(settings)
        if once:
            top.frame()
            if not stop.wait(interval_s):
                console.print(render(top.frame(), settings))
            return 0
        with Live(render(top.frame(), settings), console=console, refresh_per_second=4, screen=False) as live:
            while not stop.wait(interval_s):
                live.update(render(top.frame(), settings))
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGINT, previous)
        if top is not None:
            _close_within(top, 5.0)


def _close_within(top: Top, seconds: float) -> None:
    """Close the Kafka clients, but never hang the terminal on a broker that does not answer:
    past ``seconds`` the process ends without them (they hold nothing to flush or commit)."""
    import os
    import sys
    import threading

    closer = threading.Thread(target=top.close, daemon=True)
    closer.start()
    closer.join(seconds)
    if closer.is_alive():
        sys.stdout.flush()
        os._exit(0)
