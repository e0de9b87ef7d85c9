"""The soak's samples over time, as PNGs: ``soak-load``, ``soak-cpu``, ``soak-latency``,
``soak-checkpoints`` and ``soak-memory`` (matplotlib, from requirements-bench.txt)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

MB = 1024 * 1024


def _series(samples: Sequence[dict[str, Any]], key: str, scale: float = 1.0) -> tuple[list[float], list[float]]:
    pts = [(s["t_s"] / 60, float(s[key]) * scale) for s in samples if s.get(key) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def plots(samples: Sequence[dict[str, Any]], summary: dict[str, Any], out: Path) -> list[Path]:
    """Write the soak's plots into ``out``; returns their paths (none without samples)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not samples:
        return []
    meta = summary["meta"]
    windows = summary["windows"]
    title = f"{meta.get('model')} {meta.get('delivery')}, {meta['rate']:,.0f} req/s"
    written = []

    def panel(ax: Any, keys: Sequence[tuple[str, str, float]], ylabel: str, log: bool = False) -> None:
        for key, label, scale in keys:
            xs, ys = _series(samples, key, scale)
            if xs:
                ax.plot(xs, ys, label=label, linewidth=1.2)
        for lo, hi in (windows["early"], windows["late"]):
            ax.axvspan(lo / 60, hi / 60, color="0.9", zorder=0)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")

    def figure(name: str, rows: Sequence[tuple[Sequence[tuple[str, str, float]], str, bool]]) -> None:
        fig, axes = plt.subplots(len(rows), 1, figsize=(9, 3 * len(rows)), squeeze=False, sharex=True)
        for ax, (keys, ylabel, log) in zip(axes[:, 0], rows, strict=True):
            panel(ax, keys, ylabel, log)
        axes[-1][0].set_xlabel("minutes since the soak began")
        axes[0][0].set_title(f"{title}: {name} (shaded: early and late windows)")
        fig.tight_layout()
        path = out / f"soak-{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)

    figure("load", [
        ([("results_per_s", "results/s", 1.0), ("offered_rate", "offered/s", 1.0)], "requests / s", False),
        ([("backlog", "backlog (sent - results)", 1.0), ("lag", "committed lag", 1.0)], "requests", False),
    ])
    figure("cpu", [
        ([("cpu_cores", "TaskManager CPU", 1.0)], "cores", False),
        ([("cpu_us_per_request", "CPU per request", 1.0)], "µs / request", False),
    ])
    figure("latency", [([("p50_ms", "p50", 1.0), ("p99_ms", "p99", 1.0)], "produce to readable, ms", True)])
    figure("checkpoints", [
        ([("ckpt_size_bytes", "state size", 1 / MB), ("ckpt_checkpointed_bytes", "checkpointed (incremental)", 1 / MB)],
         "MB", False),
        ([("ckpt_duration_ms", "latest checkpoint duration", 1.0)], "ms", False),
    ])
    figure("memory", [
        ([("rss_bytes", "TaskManager RSS", 1 / MB)], "MB", False),
        ([("disk_logs_bytes", "logs", 1 / MB), ("disk_checkpoints_bytes", "job checkpoints", 1 / MB),
          ("disk_state_bytes", "state folder (no Kafka data)", 1 / MB)], "MB on disk", False),
    ])
    return written
