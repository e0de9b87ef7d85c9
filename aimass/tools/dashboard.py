"""The job's dashboard, once: its panels as data, from which both the Grafana dashboard
(``deploy/grafana/aimass.json``, PromQL on Flink's Prometheus reporter) and a rendering from
scraped data (matplotlib, for machines with no Prometheus or Grafana: the image in
docs/METRICS.md) are made.

    python -m aimass.tools.dashboard grafana > deploy/grafana/aimass.json
    python -m aimass.tools.dashboard render --seconds 120 --out docs/images/dashboard.png

``render`` scrapes the running stack's endpoints (``flink.metrics_port``) every few seconds and
draws each panel as Grafana would from Prometheus: counters as per-second rates summed by the
panel's label, gauges and histogram quantiles as their mean (or max) over subtasks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aimass.stack.prometheus import Sample

TM = "flink_taskmanager_job_task_operator_"


@dataclass(frozen=True)
class Series:
    """One line of a panel."""

    metric: str
    """The full Prometheus metric name."""
    kind: str
    """``rate`` (a counter: per second, summed), ``sum``, ``mean`` or ``max`` (over the samples)."""
    by: str = ""
    """A label to draw one line per value of (``rate`` and ``sum``)."""
    where: tuple[tuple[str, str], ...] = ()
    """Label values a sample must have."""
    legend: str = ""

    def promql(self) -> str:
        selector = self.metric + ("{" + ",".join(f'{k}="{v}"' for k, v in self.where) + "}" if self.where else "")
        by = f" by ({self.by})" if self.by else ""
        if self.kind == "rate":
            return f"sum{by} (rate({selector}[1m]))"
        return f"{'avg' if self.kind == 'mean' else self.kind}{by} ({selector})"


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    series: tuple[Series, ...]


PANELS = (
    Panel("Results written per second, by status", "reqps",
          (Series(f"{TM}model_version_status_results", "rate", by="status", legend="{{status}}"),)),
    Panel("Results written per second, by model", "reqps",
          (Series(f"{TM}model_version_status_results", "rate", by="model", legend="{{model}}"),)),
    Panel("Dead letters per second, by reason", "reqps",
          (Series(f"{TM}reason_dead_letters", "rate", by="reason", legend="{{reason}}"),)),
    Panel("De-duplicated results per second (resubmissions)", "reqps",
          (Series(f"{TM}dedupDropped", "rate", legend="dropped"),)),
    Panel("Batch size (requests per ONNX Runtime call), p50 and p99", "short",
          (Series(f"{TM}batchSize", "mean", where=(("quantile", "0.5"),), legend="p50"),
           Series(f"{TM}batchSize", "max", where=(("quantile", "0.99"),), legend="p99"))),
    Panel("Time queued in a lane (ms), p50 and p99", "ms",
          (Series(f"{TM}queuedMs", "mean", where=(("quantile", "0.5"),), legend="p50"),
           Series(f"{TM}queuedMs", "max", where=(("quantile", "0.99"),), legend="p99"))),
    Panel("Inference time per engine call (us), p50 and p99", "µs",
          (Series(f"{TM}inferenceUs", "mean", where=(("quantile", "0.5"),), legend="p50"),
           Series(f"{TM}inferenceUs", "max", where=(("quantile", "0.99"),), legend="p99"))),
    Panel("Kafka backlog: requests not yet read (source) and waiting in the scheduler", "short",
          (Series(f"{TM}pendingRecords", "sum", legend="on the topic"),
           Series(f"{TM}schedulerWaiting", "sum", legend="in the scheduler"))),
    Panel("Busy time per subtask (ms/s), batch-infer", "ms",
          (Series("flink_taskmanager_job_task_busyTimeMsPerSecond", "sum", by="subtask_index",
                  where=(("task_name", "batch_infer*"),), legend="subtask {{subtask_index}}"),)),
    Panel("Checkpoints: last duration (ms) and failures", "ms",
          (Series("flink_jobmanager_job_lastCheckpointDuration", "max", legend="last duration"),
           Series("flink_jobmanager_job_numberOfFailedCheckpoints", "max", legend="failed (total)"))),
)


def _matches(sample: Sample, series: Series) -> bool:
    if sample.name != series.metric:
        return False
    for key, value in series.where:
        got = sample.labels.get(key, "")
        if value.endswith("*") and not got.startswith(value[:-1]) or not value.endswith("*") and got != value:
            return False
    return True


def grafana() -> dict[str, Any]:
    """The Grafana dashboard (schema 39): one time-series panel per :data:`PANELS` entry."""
    panels = []
    for index, panel in enumerate(PANELS):
        targets = []
        for ref, series in enumerate(panel.series):
            expr = series.promql()
            for key, value in series.where:
                if value.endswith("*"):
                    expr = expr.replace(f'{key}="{value}"', f'{key}=~"{value[:-1]}.*"')
            targets.append({"refId": chr(ord("A") + ref), "expr": expr, "legendFormat": series.legend or "{{job_name}}",
                            "datasource": {"type": "prometheus", "uid": "${datasource}"}})
        panels.append({
            "id": index + 1, "type": "timeseries", "title": panel.title,
            "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
            "targets": targets,
        })
    return {
        "title": "AI Mass: the inference job",
        "uid": "aimass-inference",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-30m", "to": "now"},
        "refresh": "10s",
        "tags": ["aimass", "flink"],
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus",
                                 "label": "Prometheus"}]},
        "panels": panels,
    }


def evaluate(series: Series, before: list[Sample] | None, now: list[Sample], elapsed: float) -> dict[str, float]:
    """The series' value(s) at ``now`` as Grafana would draw them, by its ``by`` label."""
    def group(samples: list[Sample]) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for s in samples:
            if _matches(s, series) and s.value == s.value:  # NaN: a histogram with no data yet
                out.setdefault(s.labels.get(series.by, "") if series.by else "", []).append(s.value)
        return out

    current = group(now)
    if series.kind == "rate":
        if before is None or elapsed <= 0:
            return {}
        previous = group(before)
        return {key: max(0.0, sum(values) - sum(previous.get(key, []))) / elapsed for key, values in current.items()}
    if series.kind == "sum":
        return {key: sum(values) for key, values in current.items()}
    if series.kind == "max":
        return {key: max(values) for key, values in current.items()}
    return {key: sum(values) / len(values) for key, values in current.items()}


def record(urls: list[str], seconds: float, every: float = 5.0) -> list[tuple[float, list[Sample]]]:
    """Scrape every URL each ``every`` seconds for ``seconds``; (time, samples) per round."""
    from aimass.stack.prometheus import scrape

    rounds = []
    start = time.monotonic()
    while time.monotonic() - start <= seconds:
        at = time.monotonic() - start
        samples = [s for url in urls for s in scrape(url)]
        rounds.append((at, samples))
        print(f"\rscraped {len(rounds)} rounds, {at:.0f}/{seconds:.0f} s", end="", file=sys.stderr, flush=True)
        time.sleep(max(0.0, every - (time.monotonic() - start - at)))
    print(file=sys.stderr)
    return rounds


def render(rounds: list[tuple[float, list[Sample]]], out: Path, title: str) -> Path:
    """Draw :data:`PANELS` from scraped rounds into a PNG (two columns, as in Grafana)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = (len(PANELS) + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(14, 2.8 * rows), squeeze=False)
    for index, panel in enumerate(PANELS):
        ax = axes[index // 2][index % 2]
        for series in panel.series:
            lines: dict[str, tuple[list[float], list[float]]] = {}
            for i, (at, samples) in enumerate(rounds):
                before = rounds[i - 1] if i else None
                values = evaluate(series, before[1] if before else None, samples, at - before[0] if before else 0)
                for key, value in values.items():
                    xs, ys = lines.setdefault(key, ([], []))
                    xs.append(at)
                    ys.append(value)
            for key, (xs, ys) in sorted(lines.items()):
                legend = series.legend.replace("{{" + series.by + "}}", key) if series.by else series.legend
                ax.plot(xs, ys, label=legend or key, linewidth=1.4)
        ax.set_title(panel.title, fontsize=9, loc="left")
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7, loc="upper left")
        else:
            ax.text(0.5, 0.5, "no data in this run", ha="center", va="center", transform=ax.transAxes, fontsize=8)
    for index in range(len(PANELS), rows * 2):
        axes[index // 2][index % 2].axis("off")
    fig.suptitle(title, fontsize=11)
    fig.supxlabel("seconds since the recording started", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aimass.tools.dashboard", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("grafana", help="print the Grafana dashboard JSON")
    rec = sub.add_parser("render", help="scrape the running stack and draw the panels into a PNG")
    rec.add_argument("--seconds", type=float, default=120.0)
    rec.add_argument("--every", type=float, default=5.0)
    rec.add_argument("--out", type=Path, default=Path("docs/images/dashboard.png"))
    args = parser.parse_args(argv)
    if args.command == "grafana":
        print(json.dumps(grafana(), indent=2))
        return 0
    from aimass.settings import Settings
    from aimass.stack.flink import FlinkCluster

    settings = Settings.load()
    urls = list(FlinkCluster(settings).metrics_urls().values())
    if not urls:
        print("no Prometheus endpoint is running: start the stack (aimass up) with AIMASS_FLINK_METRICS_PORT set",
              file=sys.stderr)
        return 2
    rounds = record(urls, args.seconds, args.every)
    path = render(rounds, args.out, f"AI Mass job, scraped from {len(urls)} endpoints every {args.every:.0f} s")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
