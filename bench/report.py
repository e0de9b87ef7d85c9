"""Writing a bench run down: ``results.json`` (everything), ``results.md`` (the table), PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MB = 1024 * 1024


def write_figures(path: Path, figures: dict[str, Any]) -> None:
    """Write a benchmark's figures as indented JSON (making the folder) and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}", flush=True)


def raw_limit(raw: dict[str, Any], model: str, mode: str = "ort") -> float | None:
    """Rows/s of raw ONNX Runtime on ``model`` at its largest measured batch size."""
    figures = raw.get(model, {}).get("batch_sizes", {})
    if not figures:
        return None
    largest = max(figures, key=int)
    return float(figures[largest][mode]["rows_per_s"])


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float | int):
        return f"{value:,.{digits}f}"
    return str(value)


def _lat(phase: dict[str, Any] | None) -> str:
    if not phase:
        return "–"
    return " / ".join(_fmt(phase.get(k)) for k in ("p50_ms", "p95_ms", "p99_ms"))


def markdown(data: dict[str, Any]) -> str:
    """The results as Markdown: the limit first, then one row per system and model."""
    meta, raw, runs = data["meta"], data["raw"], data["runs"]
    rates = meta["options"]["rates"]
    smoke = " (smoke run: figures are not meaningful)" if meta["options"]["smoke"] else ""
    lines = [
        "# AI Mass benchmark results",
        "",
        f"{meta['started']}, {meta['machine']}; seed {meta['options']['seed']}, "
        f"{meta['options']['duration_s']} s per phase{smoke}.",
        "Method: bench/README.md. Command: `" + meta["command"] + "`.",
        "",
        "## The limit: ONNX Runtime alone (rows/s, 1 intra-op thread)",
        "",
        "| model | batch | ORT | ORT + Avro codec | CPU s / 1k rows (ORT) | CPU s / 1k rows (ORT + codec) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for model, figures in raw.items():
        if "error" in figures:
            lines.append(f"| {model} | – | error: {figures['error'][:80]} | | | |")
            continue
        for size, f in figures["batch_sizes"].items():
            lines.append(
                f"| {model} | {size} | {_fmt(f['ort']['rows_per_s'])} | {_fmt(f['ort+codec']['rows_per_s'])} | "
                f"{_fmt(f['ort']['cpu_s_per_1000'], 3)} | {_fmt(f['ort+codec']['cpu_s_per_1000'], 3)} |"
            )
    loads = " | ".join(f"p50 / p95 / p99 ms at {r:.0%}" for r in rates)
    lines += [
        "",
        "## Systems on Kafka (same broker, model file, inputs and Avro codec)",
        "",
        f"| system | model | sustained req/s | vs ORT | vs ORT + codec | {loads} | kept up | "
        "CPU s / 1k req | peak RSS MB | mean batch | all served |",
        "|---|---|---:|---:|---:|" + "---:|" * len(rates) + "---|---:|---:|---:|---|",
    ]
    for run in runs:
        if "error" in run:
            lines.append(f"| {run['system']} | {run['model']} | error: {run['error'][:100]} |")
            continue
        sat = run["saturation"]
        rate = sat.get("rate")
        limit, limit_codec = raw_limit(raw, run["model"]), raw_limit(raw, run["model"], "ort+codec")
        ratio = f"{rate / limit:.1%}" if rate and limit else "–"
        ratio_codec = f"{rate / limit_codec:.1%}" if rate and limit_codec else "–"
        phases = {p["fraction"]: p for p in run["paced"]}
        lats = " | ".join(_lat(phases.get(r)) for r in rates)
        kept = all(p.get("kept_up") for p in run["paced"]) if run["paced"] else None
        served = sat.get("all_served") and all(p.get("all_served") for p in run["paced"])
        batches = [p.get("mean_batch_size") for p in (sat, *run["paced"]) if p.get("mean_batch_size")]
        batch = " / ".join(_fmt(b, 1) for b in batches) or "–"
        lines.append(
            f"| {run['system']} | {run['model']} | {_fmt(rate)} | {ratio} | {ratio_codec} | {lats} | {_fmt(kept)} | "
            f"{_fmt(sat.get('cpu_s_per_1000'), 3)} | {_fmt(run['peak_rss_bytes'] / MB)} | {batch} | {_fmt(served)} |"
        )
    lines += [
        "",
        "Sustained: drain rate of a preloaded backlog, warm-up discarded. Latency: scheduled produce to "
        "result readable (read_committed), open-loop at the given fraction of the system's own sustained "
        "rate, warm-up discarded. Kept up: median latency of the second half of each paced phase at most "
        "1.5 x the first half's + 250 ms. CPU: processes of the system only (Flink: TaskManager JVM and its "
        "Python workers). Mean batch: rows per ONNX Runtime call from the results, at saturation / each load.",
        "",
    ]
    return "\n".join(lines)


def plots(data: dict[str, Any], out: Path) -> list[Path]:
    """Throughput, latency and cost plots, one PNG each; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in data["runs"] if "error" not in r]
    models = sorted({r["model"] for r in runs})
    written: list[Path] = []
    if not runs:
        return written

    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        mine = [r for r in runs if r["model"] == model]
        names = [r["system"] for r in mine]
        ax.bar(names, [r["saturation"].get("rate") or 0 for r in mine], color="tab:blue")
        limit = raw_limit(data["raw"], model, "ort+codec")
        if limit:
            ax.axhline(limit, color="tab:red", linestyle="--", label="ORT + codec, batch 32")
            ax.legend()
        ax.set_title(f"{model}: sustained throughput")
        ax.set_ylabel("requests / s")
        ax.tick_params(axis="x", rotation=30)
    written.append(_save(fig, out / "throughput.png"))

    fractions = data["meta"]["options"]["rates"]
    fig, axes = plt.subplots(len(fractions), len(models), figsize=(6 * len(models), 3.5 * len(fractions)),
                             squeeze=False)
    for row, fraction in enumerate(fractions):
        for col, model in enumerate(models):
            ax = axes[row][col]
            mine = [r for r in runs if r["model"] == model]
            for k, (key, color) in enumerate((("p50_ms", "tab:green"), ("p95_ms", "tab:orange"),
                                               ("p99_ms", "tab:red"))):
                values = []
                for r in mine:
                    phase: dict[str, Any] = next((p for p in r["paced"] if p["fraction"] == fraction), {})
                    values.append(phase.get(key) or 0)
                ax.bar([i + (k - 1) * 0.27 for i in range(len(mine))], values, width=0.27, color=color, label=key)
            ax.set_xticks(range(len(mine)), [r["system"] for r in mine], rotation=30)
            ax.set_yscale("log")
            ax.set_ylabel("ms")
            ax.set_title(f"{model}: latency at {fraction:.0%} of own sustained rate")
            ax.legend(fontsize="small")
    written.append(_save(fig, out / "latency.png"))

    fig, axes = plt.subplots(2, len(models), figsize=(6 * len(models), 7), squeeze=False)
    for col, model in enumerate(models):
        mine = [r for r in runs if r["model"] == model]
        names = [r["system"] for r in mine]
        axes[0][col].bar(names, [r["saturation"].get("cpu_s_per_1000") or 0 for r in mine], color="tab:purple")
        axes[0][col].set_title(f"{model}: CPU seconds per 1,000 requests (at saturation)")
        axes[1][col].bar(names, [r["peak_rss_bytes"] / MB for r in mine], color="tab:gray")
        axes[1][col].set_title(f"{model}: peak RSS (MB)")
        for ax in axes[:, col]:
            ax.tick_params(axis="x", rotation=30)
    written.append(_save(fig, out / "cost.png"))
    return written


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def write(data: dict[str, Any], out: Path, with_plots: bool = True) -> list[Path]:
    """Write ``results.json``, ``results.md`` and (unless told not to) the plots into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    (out / "results.md").write_text(markdown(data), encoding="utf-8")
    written = [out / "results.json", out / "results.md"]
    if with_plots:
        written += plots(data, out)
    return written
