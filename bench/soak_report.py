"""The soak's samples turned into a verdict: windows, the issue's targets, ``soak.json`` and ``soak.md``.

Pure logic (no Kafka, no Flink): :func:`summarize` takes the samples and the completed
checkpoints and evaluates the soak targets; :func:`markdown` writes them down. Targets are
reported, never asserted: a miss is a finding, not a failed run.

The windows are those of a 30-minute soak (warm-up: the first 2 minutes; early: minutes 2-7;
late: the last 5 minutes) and shrink in proportion for a shorter run; a longer run keeps them
at their length (the late window stays the last 5 minutes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.report import _fmt

#: The reference soak length the windows are written for.
REFERENCE_S = 1800.0
MB = 1024 * 1024


@dataclass(frozen=True)
class Windows:
    """Time windows (seconds since the soak's start) the targets compare."""

    duration_s: float
    scale: float
    """1 for a soak of 30 minutes or more; duration / 30 min below."""
    warmup_s: float
    early: tuple[float, float]
    late: tuple[float, float]
    middle_third: tuple[float, float]
    last_third: tuple[float, float]

    @classmethod
    def of(cls, duration_s: float) -> Windows:
        """The windows of a soak of ``duration_s`` seconds."""
        scale = min(1.0, duration_s / REFERENCE_S)
        third = duration_s / 3
        return cls(duration_s, scale, 120 * scale, (120 * scale, 420 * scale), (duration_s - 300 * scale, duration_s),
                   (third, 2 * third), (2 * third, duration_s))

    def note(self) -> str:
        """How the windows were chosen, for the report."""
        if self.scale >= 1:
            return "windows of the reference 30-minute soak: warm-up 0-2 min, early 2-7 min, late = last 5 min"
        return (f"short run ({self.duration_s:.0f} s): the 30-minute windows scaled by {self.scale:.3f} "
                f"(warm-up 0-{self.warmup_s:.0f} s, early {self.early[0]:.0f}-{self.early[1]:.0f} s, "
                f"late {self.late[0]:.0f}-{self.late[1]:.0f} s)")


def parse_duration(text: str) -> float:
    """``90``, ``120s``, ``30m``, ``1.5h`` to seconds.

    >>> parse_duration("30m"), parse_duration("120s"), parse_duration("2h"), parse_duration("45")
    (1800.0, 120.0, 7200.0, 45.0)
    """
    raw = text.strip().lower()
    factor = {"s": 1.0, "m": 60.0, "h": 3600.0}.get(raw[-1:])
    number = raw[:-1] if factor is not None else raw
    try:
        value = float(number) * (factor or 1.0)
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90, 120s, 30m, 1h)") from None
    if value <= 0:
        raise ValueError(f"a duration must be positive: {text!r}")
    return value


def inside(samples: Sequence[dict[str, Any]], window: tuple[float, float]) -> list[dict[str, Any]]:
    """Samples whose interval's midpoint lies in ``[start, end)`` (the last one at ``end`` counts)."""
    lo, hi = window
    out = []
    for s in samples:
        mid = s["t_s"] - s["interval_s"] / 2
        if lo <= mid < hi or (mid == hi and s is samples[-1]):
            out.append(s)
    return out


def cpu_per_request_us(samples: Sequence[dict[str, Any]]) -> float | None:
    """CPU microseconds per result over ``samples``: their CPU seconds over their results (not a mean of ratios)."""
    results = sum(s["results_in_interval"] for s in samples)
    return sum(s["cpu_s"] for s in samples) / results * 1e6 if results else None


def slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope of ``ys`` over ``xs``; None with fewer than 3 points or no spread."""
    if len(xs) < 3 or max(xs) == min(xs):
        return None
    return float(np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)[0])


def p99(values: Sequence[float]) -> float | None:
    """The 99th percentile; None when empty."""
    return float(np.percentile(np.asarray(values, float), 99)) if len(values) else None


def latency_percentiles(values_ms: Sequence[float]) -> dict[str, float | None]:
    """p50 and p99 (ms) of ``values_ms`` (any sequence, an ``array`` included); None when empty."""
    if not len(values_ms):
        return {"p50_ms": None, "p99_ms": None}
    p50, p99_ = np.percentile(np.asarray(values_ms, dtype=np.float64), [50, 99])
    return {"p50_ms": round(float(p50), 2), "p99_ms": round(float(p99_), 2)}


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _median(values: Sequence[float]) -> float | None:
    return float(np.median(values)) if len(values) else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _target(key: str, name: str, value: float | None, limit: float, unit: str, detail: str,
            note: str = "") -> dict[str, Any]:
    return {"id": key, "name": name, "value": None if value is None else round(value, 4), "limit": limit, "unit": unit,
            "met": None if value is None else value <= limit, "detail": detail, "note": note}


def _num(samples: Sequence[dict[str, Any]], key: str) -> list[float]:
    return [float(s[key]) for s in samples if s.get(key) is not None]


def summarize(samples: Sequence[dict[str, Any]], checkpoints: Sequence[tuple[int, int, int]],
              meta: dict[str, Any]) -> dict[str, Any]:
    """The soak's figures and targets.

    Args:
        samples: The samples in time order (fields as written to ``soak.jsonl``).
        checkpoints: Completed checkpoints as (trigger epoch ms, duration ms, state size bytes).
        meta: ``duration_s``, ``rate``, ``checkpoint_interval_ms``, ``started_epoch_ms``,
            ``dedup_ttl_s`` (None if the job has no such setting), and anything else to keep.
    """
    w = Windows.of(float(meta["duration_s"]))
    rate = float(meta["rate"])
    interval_ms = float(meta["checkpoint_interval_ms"])
    ttl = meta.get("dedup_ttl_s")
    early, late = inside(samples, w.early), inside(samples, w.late)
    steady = inside(samples, (w.warmup_s, w.duration_s))
    targets = []

    cpu_early, cpu_late = cpu_per_request_us(early), cpu_per_request_us(late)
    targets.append(_target(
        "cpu_per_request", "CPU per request, late / early", _ratio(cpu_late, cpu_early), 1.15, "x",
        f"{_fmt(cpu_late, 1)} µs late vs {_fmt(cpu_early, 1)} µs early (TaskManager processes)"))

    t0 = int(meta["started_epoch_ms"])
    after = [d for trig, d, _ in checkpoints if (trig - t0) / 1000 >= w.warmup_s]
    ckpt_p99 = p99(after)
    targets.append(_target(
        "checkpoint_p99", "checkpoint p99 duration / interval", _ratio(ckpt_p99, interval_ms), 0.25, "x",
        f"p99 {_fmt(ckpt_p99)} ms over {len(after)} checkpoints after warm-up, interval {interval_ms:.0f} ms "
        f"(all {len(checkpoints)}: p99 {_fmt(p99([d for _, d, _ in checkpoints]))} ms)"))

    size_mid = _mean(_num(inside(samples, w.middle_third), "ckpt_size_bytes"))
    size_last = _mean(_num(inside(samples, w.last_third), "ckpt_size_bytes"))
    if ttl is None:
        ttl_note = "the job has no job.dedup_ttl_s setting: no TTL to wait for"
    elif ttl > w.middle_third[0]:
        ttl_note = (f"the de-duplication TTL ({ttl} s) is not reached before the middle third starts "
                    f"({w.middle_third[0]:.0f} s): state is expected to grow, so this is no steady-state verdict")
    else:
        ttl_note = ""
    targets.append(_target(
        "checkpoint_size", "checkpoint size, last third / middle third", _ratio(size_last, size_mid), 1.10, "x",
        f"mean {_fmt(_mb(size_last), 2)} MB vs {_fmt(_mb(size_mid), 2)} MB", ttl_note))

    grow = slope([s["t_s"] for s in steady], [s["backlog"] for s in steady])
    span = (steady[-1]["t_s"] - steady[0]["t_s"]) if steady else 0.0
    growth_s = grow * span / rate if grow is not None and rate else None
    allowed = max(1.0, interval_ms / 1000)
    targets.append(_target(
        "backlog", "backlog growth over the run after warm-up", growth_s, allowed, "s of offered work",
        f"slope {_fmt(grow, 2)} requests/s over {span:.0f} s; backlog mean {_fmt(_mean(_num(early, 'backlog')))} "
        f"early, {_fmt(_mean(_num(late, 'backlog')))} late"))

    rss_early, rss_late = _median(_num(early, "rss_bytes")), _median(_num(late, "rss_bytes"))
    targets.append(_target(
        "rss", "RSS, late / early", _ratio(rss_late, rss_early), 1.10, "x",
        f"median {_fmt(_mb(rss_late))} MB late vs {_fmt(_mb(rss_early))} MB early"))

    def growth_per_hour(key: str) -> float | None:
        pts = [(s["t_s"], s[key]) for s in steady if s.get(key) is not None]
        g = slope([p[0] for p in pts], [p[1] for p in pts])
        return None if g is None else round(g * 3600)

    return {
        "meta": dict(meta),
        "windows": {"note": w.note(), "scale": w.scale, "warmup_s": w.warmup_s, "early": w.early, "late": w.late,
                    "middle_third": w.middle_third, "last_third": w.last_third},
        "targets": targets,
        "figures": {
            "samples": len(samples),
            "results_per_s_after_warmup": _round(_mean(_num(steady, "results_per_s")), 1),
            "cpu_cores_after_warmup": _round(_mean(_num(steady, "cpu_cores")), 3),
            "cpu_us_per_request_early": _round(cpu_early, 2), "cpu_us_per_request_late": _round(cpu_late, 2),
            "checkpoints_completed": len(checkpoints),
            "checkpoint_p99_ms_after_warmup": _round(ckpt_p99, 1),
            "checkpoint_size_bytes_last": samples[-1].get("ckpt_size_bytes") if samples else None,
            "rss_bytes_early": rss_early, "rss_bytes_late": rss_late,
            "backlog_slope_per_s": _round(grow, 3),
            "disk_logs_bytes_per_hour": growth_per_hour("disk_logs_bytes"),
            "disk_checkpoints_bytes_per_hour": growth_per_hour("disk_checkpoints_bytes"),
            "disk_state_bytes_per_hour": growth_per_hour("disk_state_bytes"),
        },
    }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _mb(value: float | None) -> float | None:
    return None if value is None else value / MB


def markdown(summary: dict[str, Any]) -> str:
    """The soak as Markdown: what ran, the targets met or missed, the run's totals."""
    meta, fig = summary["meta"], summary["figures"]
    run = meta.get("run", {})
    lines = [
        "# AI Mass soak",
        "",
        f"{meta.get('started', '')}, {meta.get('machine', '')}; commit {meta.get('commit', '?')}.",
        f"Command: `{meta.get('command', '')}`.",
        "",
        f"Model `{meta.get('model')}`, {meta.get('delivery')}, parallelism {meta.get('parallelism')}, "
        f"{_fmt(meta['rate'])} requests/s ({meta.get('rate_source', '')}) for {meta['duration_s']:.0f} s, "
        f"a sample every {meta.get('interval_s')} s; checkpoint interval {meta['checkpoint_interval_ms']} ms, "
        f"de-duplication TTL {_fmt(meta.get('dedup_ttl_s'))} s; overrides: "
        + (", ".join(f"`{k}={v}`" for k, v in (meta.get("overrides") or {}).items()) or "none") + ".",
        "",
        f"Windows: {summary['windows']['note']}.",
        "",
        "## Targets (reported, not asserted)",
        "",
        "| target | value | limit | met | how |",
        "|---|---:|---:|---|---|",
    ]
    for t in summary["targets"]:
        how = t["detail"] + (f". {t['note']}" if t["note"] else "")
        lines.append(f"| {t['name']} | {_fmt(t['value'], 3)} | {_fmt(t['limit'], 2)} {t['unit']} | "
                     f"{_fmt(t['met'])} | {how} |")
    lines += [
        "",
        "## The run",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| requests sent | {_fmt(run.get('sent'))} |",
        f"| answered / missing / duplicates | {_fmt(run.get('answered'))} / {_fmt(run.get('missing'))} / "
        f"{_fmt(run.get('duplicates'))} |",
        f"| results checked (decoded) / not OK | {_fmt(run.get('checked'))} / {_fmt(run.get('not_ok'))} |",
        f"| dead letters | {_fmt(run.get('dead_letters'))} |",
        f"| mean batch size (checked results) | {_fmt(run.get('mean_batch_size'), 1)} |",
        f"| results/s after warm-up | {_fmt(fig['results_per_s_after_warmup'], 1)} |",
        f"| TaskManager CPU after warm-up (cores) | {_fmt(fig['cpu_cores_after_warmup'], 2)} |",
        f"| CPU µs / request, early / late | {_fmt(fig['cpu_us_per_request_early'], 1)} / "
        f"{_fmt(fig['cpu_us_per_request_late'], 1)} |",
        f"| latency after warm-up, p50 / p99 (ms) | {_fmt(run.get('p50_ms'), 1)} / {_fmt(run.get('p99_ms'), 1)} |",
        f"| checkpoints completed / failed | {_fmt(fig['checkpoints_completed'])} / {_fmt(run.get('ckpts_failed'))} |",
        f"| last checkpoint size (MB) | {_fmt(_mb(fig['checkpoint_size_bytes_last']), 2)} |",
        f"| disk growth per hour: logs / job checkpoints / state folder (MB) | "
        f"{_fmt(_mb(fig['disk_logs_bytes_per_hour']), 1)} / {_fmt(_mb(fig['disk_checkpoints_bytes_per_hour']), 1)}"
        f" / {_fmt(_mb(fig['disk_state_bytes_per_hour']), 1)} |",
        f"| result: {'ok' if not run.get('failed') else 'FAILED'} | {run.get('failed') or ''} |",
        "",
        "CPU: user + system seconds of the TaskManager process trees that run the job's tasks (JVM and "
        "any Python workers), from /proc, per result in the same intervals. Latency: scheduled send to "
        "result readable (read_committed), no coordinated omission. Backlog: requests sent minus distinct "
        "results; lag: the job's committed offsets (moved at checkpoints). Checkpoint size: the latest "
        "completed checkpoint's full state size. Plots: soak-*.png. Samples: soak.jsonl.",
        "",
    ]
    return "\n".join(lines)
