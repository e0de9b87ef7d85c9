"""The report of a compression run: figures of every candidate beside the parent's, ratios,
and a recommended version per target (cpu, gpu, edge), as a table, JSON and Markdown."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPORT_JSON, REPORT_MD = "report.json", "report.md"


@dataclass(frozen=True)
class Candidate:
    """One version's figures, all measured in the same run with the same protocol."""

    version: str
    role: str
    """``parent``, ``new`` (this run's variant) or ``earlier`` (a variant of the same parent)."""
    methods: str
    """The methods that made it, joined with ``+``; ``-`` for the parent."""
    size_bytes: int
    gzip_bytes: int
    latency_ms: dict[str, float]
    """Median milliseconds per call, by batch size."""
    rows_per_s: float
    """Throughput at the largest batch size measured."""
    accuracy: float | None
    """Share of held-out rows answered right; None without labels."""
    top1_agreement: float
    """Share of rows with the parent's top-1 answer (1.0 for the parent)."""
    max_abs_diff: float
    """Largest absolute difference of a float output from the parent's."""
    drop_points: float
    """Accuracy lost against the parent in percentage points (top-1 disagreement without labels)."""
    serving: bool
    gpu_rows_per_s: float | None = None
    """Throughput on the CUDA provider at the largest batch, when one was usable."""

    def within(self, max_drop: float) -> bool:
        """Whether it lost at most ``max_drop`` points."""
        return self.drop_points <= max_drop + 1e-9


@dataclass(frozen=True)
class Report:
    """Everything a run measured and decided; saved next to the new version."""

    model: str
    parent_version: str
    new_version: str
    steps: list[dict[str, Any]]
    created_at: str
    protocol: dict[str, Any]
    max_accuracy_drop: float
    serving: bool
    forced: bool
    gpu: str
    """``measured on ...`` or ``not measured on GPU here: <why>``."""
    candidates: list[Candidate]
    recommendations: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def parent(self) -> Candidate:
        return next(c for c in self.candidates if c.role == "parent")

    @property
    def new(self) -> Candidate:
        return next(c for c in self.candidates if c.role == "new")

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data, ratios to the parent included."""
        data = asdict(self)
        for row, candidate in zip(data["candidates"], self.candidates, strict=True):
            row["ratios_to_parent"] = ratios(self.parent, candidate)
            row["within_threshold"] = candidate.within(self.max_accuracy_drop)
        return data


def ratios(parent: Candidate, other: Candidate) -> dict[str, float]:
    """How many times smaller and faster ``other`` is than ``parent`` (above 1 is better)."""
    out = {"size": parent.size_bytes / other.size_bytes}
    for batch, ms in other.latency_ms.items():
        out[f"speed_b{batch}"] = parent.latency_ms[batch] / ms if ms else float("nan")
    out["rows_per_s"] = other.rows_per_s / parent.rows_per_s if parent.rows_per_s else float("nan")
    return {k: round(v, 3) for k, v in out.items()}


def recommend(candidates: list[Candidate], max_drop: float, gpu: str) -> dict[str, dict[str, str]]:
    """A version per target, chosen among the candidates within the accuracy threshold.

    cpu: highest throughput; edge: smallest file; gpu: highest CUDA throughput when it was
    measured, else an fp16 variant (the format GPUs run fastest) or the parent.
    """
    eligible = [c for c in candidates if c.within(max_drop) or c.role == "parent"]
    cpu = max(eligible, key=lambda c: (c.rows_per_s, -c.size_bytes))
    edge = min(eligible, key=lambda c: (c.size_bytes, -c.rows_per_s))
    picks = {
        "cpu": {"version": cpu.version, "why": f"highest CPU throughput ({cpu.rows_per_s:,.0f} rows/s) "
                f"within {max_drop:g} point(s) of accuracy"},
        "edge": {"version": edge.version, "why": f"smallest file ({edge.size_bytes:,} bytes) "
                 f"within {max_drop:g} point(s) of accuracy"},
    }
    measured = [c for c in eligible if c.gpu_rows_per_s is not None]
    if measured:
        best = max(measured, key=lambda c: c.gpu_rows_per_s or 0.0)
        picks["gpu"] = {"version": best.version, "why": f"highest CUDA throughput ({best.gpu_rows_per_s:,.0f} rows/s)"}
    else:
        fp16 = [c for c in eligible if "fp16" in c.methods.split("+")]
        if fp16:
            pick, why = fp16[0], "fp16 variant: GPUs run float16 fastest"
        else:
            pick = next(c for c in candidates if c.role == "parent")
            why = "the parent: no fp16 variant within the threshold (int8 operators mostly run on the CPU under CUDA)"
        picks["gpu"] = {"version": pick.version, "why": f"{why}; {gpu}"}
    return {target: picks[target] for target in ("cpu", "gpu", "edge")}


_COLUMNS = (
    "version", "methods", "size", "size x", "b1 ms", "b32 ms", "rows/s", "speed x", "quality", "drop", "serving",
)


def _rows(report: Report) -> list[list[str]]:
    parent = report.parent
    rows = []
    for c in report.candidates:
        r = ratios(parent, c)
        quality = (f"acc {c.accuracy:.2%}" if c.accuracy is not None else f"agree {c.top1_agreement:.2%}")
        if c.role != "parent":
            quality += f" |d|<={c.max_abs_diff:.2g}"
        batches = list(c.latency_ms)
        rows.append([
            f"{c.version} ({c.role})", c.methods, f"{c.size_bytes / 1024:,.1f} KiB", f"{r['size']:.2f}",
            f"{c.latency_ms[batches[0]]:.3f}", f"{c.latency_ms[batches[-1]]:.3f}", f"{c.rows_per_s:,.0f}",
            f"{r['rows_per_s']:.2f}", quality, f"{c.drop_points:+.2f} pt", "yes" if c.serving else "no",
        ])
    return rows


def render_table(report: Report) -> str:
    """The report as an aligned text table with the recommendations below it."""
    rows = [list(_COLUMNS), *_rows(report)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines += [f"recommended for {t}: version {p['version']} ({p['why']})" for t, p in report.recommendations.items()]
    return "\n".join(lines)


def render_markdown(report: Report) -> str:
    """The report as a Markdown page."""
    p = report.protocol
    status = "serving" if report.serving else "NOT serving (\"serving\": false: pin the version to use it)"
    lines = [
        f"# {report.model} {report.new_version}: compressed from {report.model} {report.parent_version}",
        "",
        f"Methods: {' -> '.join(s['method'] for s in report.steps)}. Created {report.created_at}. Status: {status}"
        + (" (kept serving by --force)" if report.forced else "") + ".",
        "",
        f"Protocol: CPU provider, {p['intra_op_threads']} intra-op thread(s), median of {p['repeats']} timed runs "
        f"after {p['warmup']} warm-up runs, batches {', '.join(map(str, p['batch_sizes']))}; quality on "
        f"{p['eval_rows']} rows from {p['eval_source']}; accuracy threshold {report.max_accuracy_drop:g} point(s). "
        f"GPU: {report.gpu}.",
        "",
        "| " + " | ".join(_COLUMNS) + " |",
        "|" + "---|" * len(_COLUMNS),
        *("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in _rows(report)),
        "",
        "size x, speed x: the parent's figure divided by this one's (rows/s: this one's over the parent's); "
        "drop: accuracy points lost against the parent (top-1 disagreement when there are no labels).",
        "",
        "## Recommendations",
        "",
        *(f"- **{t}**: version {p['version']}: {p['why']}" for t, p in report.recommendations.items()),
        "",
        "## Steps",
        "",
        *(f"- `{s['method']}`: " + ", ".join(f"{k}={v}" for k, v in s.items() if k != "method") for s in report.steps),
        "",
    ]
    return "\n".join(lines)


def save(report: Report, directory: Path) -> None:
    """Write ``report.json`` and ``report.md`` into ``directory``."""
    (directory / REPORT_JSON).write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    (directory / REPORT_MD).write_text(render_markdown(report), encoding="utf-8")
