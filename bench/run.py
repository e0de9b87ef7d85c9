"""Run the benchmark: the limit (raw ONNX Runtime), the peers and AI Mass, in one run.

``python -m bench --smoke`` checks the harness in a few minutes; ``python -m bench`` is the
full run. The bench starts its own stack (Kafka, and Flink when AI Mass is measured) on its
own ports and state folder (:mod:`bench.stack`), gives every run fresh topics and consumer
groups, and stops what it started at the end. See bench/README.md for the method.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aimass.contract.codec import Codec
from aimass.serving.models import ModelRepository
from aimass.settings import PROJECT_ROOT, Settings
from bench import report
from bench.driver import Collector, drain_rate, latencies, paced, preload, producer, served
from bench.meter import Meter
from bench.progress import Progress
from bench.stack import BenchStack, bench_env, create_topics, delete_topics, run_settings
from bench.systems import SYSTEMS, Run, WorkerSystem, expand, make
from bench.workload import Workload, model_inputs

SEED = 20240601


class BenchError(RuntimeError):
    """A run could not be measured (the message says why)."""


@dataclass(frozen=True)
class Options:
    """What to run and for how long."""

    systems: list[str] = field(default_factory=lambda: list(SYSTEMS))
    models: list[str] = field(default_factory=lambda: ["digits", "heavy"])
    duration_s: float = 30.0
    """Length of each measured phase (the saturation drain aims at this long, too)."""
    rates: list[float] = field(default_factory=lambda: [0.5, 0.8])
    """Paced loads, as fractions of each system's own sustained rate."""
    seed: int = SEED
    smoke: bool = False
    out: Path = PROJECT_ROOT / "bench" / "out"
    warmup_requests: int = 2000
    """Requests served (and discarded) before anything is measured; also the first rate estimate."""
    warmup_fraction: float = 0.1
    """Share of a saturation drain's first results discarded as warm-up."""
    min_requests: int = 1000
    max_requests: int = 2_000_000
    start_timeout_s: float = 300.0
    keep_topics: bool = False


def _git_commit() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT,  # noqa: S607
                              capture_output=True, text=True, timeout=10, check=False)
        return done.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in ("apache-flink", "onnxruntime-gpu", "onnxruntime", "confluent-kafka", "quixstreams", "fastavro"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


class Bench:
    """One bench run over systems x models on a stack's broker (and cluster)."""

    def __init__(self, options: Options, settings: Settings, progress: Progress) -> None:
        self.options = options
        self.settings = settings
        self.progress = progress
        self.codec = Codec(settings.paths.schemas_dir)
        self.data: dict[str, Any] = {
            "meta": {
                "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
                "commit": _git_commit(),
                "versions": _versions(),
                "command": "python -m bench " + shlex.join(sys.argv[1:]),
                "options": {**asdict(options), "out": str(options.out)},
            },
            "raw": {},
            "runs": [],
        }

    def run(self) -> dict[str, Any]:
        """Measure every system on every model; writes results after each run."""
        for model in self.options.models:
            for system in self.options.systems:
                self.progress.run(f"{system} {model}")
                try:
                    if system == "raw-ort":
                        self.data["raw"][model] = self.raw(model)
                    else:
                        self.data["runs"].append(self.kafka_fed(system, model))
                except Exception as exc:  # noqa: BLE001 - one failed run must not lose the others
                    self.progress.say(f"  failed: {type(exc).__name__}: {exc}")
                    entry = {"system": system, "model": model, "error": f"{type(exc).__name__}: {exc}"}
                    if system == "raw-ort":
                        self.data["raw"][model] = entry
                    else:
                        self.data["runs"].append(entry)
                report.write(self.data, self.options.out, with_plots=False)
        return self.data

    def raw(self, model: str) -> dict[str, Any]:
        """The limit, measured in a process of its own."""
        seconds = max(0.5, self.options.duration_s / 6)
        self.progress.begin("raw ONNX Runtime")
        argv = [sys.executable, "-m", "bench.systems.raw_ort", "--model", model, "--seconds", str(seconds),
                "--seed", str(self.options.seed)]
        env = {**os.environ, **self.settings.as_env(), "PYTHONPATH": str(PROJECT_ROOT)}
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False,  # noqa: S603
                              cwd=PROJECT_ROOT)
        if done.returncode != 0:
            raise BenchError(f"raw_ort exited {done.returncode}: {done.stderr[-2000:]}")
        figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        best = max(figures["batch_sizes"].items(), key=lambda kv: int(kv[0]))
        self.progress.say(f"  ORT batch {best[0]}: {best[1]['ort']['rows_per_s']:,.0f} rows/s; "
                          f"with codec {best[1]['ort+codec']['rows_per_s']:,.0f} rows/s")
        return figures

    def kafka_fed(self, system_name: str, model: str, inputs_of: str | None = None) -> dict[str, Any]:
        """Warm-up, saturation drain, then paced loads, on fresh topics. ``inputs_of``: the model
        whose inputs and batching the requests to ``model`` take (a graph's name has no folder)."""
        o = self.options
        name = f"{system_name}-{model}-{uuid.uuid4().hex[:6]}"
        settings = run_settings(self.settings, name)
        k = settings.kafka
        spec = ModelRepository(settings.paths.models_dir).resolve(inputs_of or model)
        run = Run(name, model, settings, spec.max_batch_size or settings.job.max_batch_size,
                  spec.max_delay_ms if spec.max_delay_ms is not None else settings.job.max_delay_ms,
                  settings.paths.state_dir / "logs" / "bench")
        workload = Workload.from_inputs(
            self.codec, model, model_inputs(inputs_of or model, settings.paths.models_dir, o.seed), o.seed)
        create_topics(settings)
        system = make(system_name)
        collector = Collector(k.bootstrap, k.results_topic, k.partitions).start()
        prod = producer(k.bootstrap)
        result: dict[str, Any] = {"system": system_name, "model": model, "version": spec.version, "run": name,
                                  "description": SYSTEMS[system_name], "paced": []}
        progress = self.progress

        def alive() -> None:
            if isinstance(system, WorkerSystem) and system.exited() is not None:
                raise BenchError(f"{system_name} exited with {system.exited()}; see {run.log_dir / name}.log")

        def wait(phase: int, count: int, timeout_s: float) -> None:
            def report(done: int, total: int) -> None:
                progress.update(done, total)
                alive()

            if not collector.wait(phase, count, timeout_s, report):
                got = collector.per_phase.get(phase, 0)
                raise BenchError(f"only {got} of {count} results within {timeout_s:.0f}s")

        try:
            with Meter(system.pids) as meter:
                progress.begin("warm-up")
                warm_ids = preload(prod, k.requests_topic, workload, 0, o.warmup_requests)
                began = time.monotonic()
                system.start(run)
                result["start_s"] = round(time.monotonic() - began, 2)
                wait(0, len(warm_ids), o.start_timeout_s)
                estimate = _first_estimate(collector, warm_ids, began)
                result["warmup"] = served(collector, self.codec, warm_ids)

                # Saturation: a backlog sized to drain in about 1.5 x duration; again, sized by
                # the measured rate, while the estimate was far off (at most 4 tries).
                for attempt, phase in enumerate(range(1, 5)):
                    count = int(min(o.max_requests, max(o.min_requests, estimate * o.duration_s * 1.5)))
                    progress.begin("saturation" if attempt == 0 else "saturation (resized)")
                    ids = preload(prod, k.requests_topic, workload, phase, count)
                    loaded, driver_cpu = time.monotonic(), time.process_time()
                    wait(phase, count, max(120.0, 4 * count / estimate))
                    driver_cpu = time.process_time() - driver_cpu
                    rate, start, end = drain_rate(collector, ids, loaded, o.warmup_fraction)
                    if rate is not None and (end - start >= 0.5 * o.duration_s or count >= o.max_requests):
                        break
                    estimate = rate if rate is not None else estimate * 4
                if rate is None:
                    raise BenchError("the backlog was served before it was fully produced: raise --duration")
                cpu = meter.cpu_between(start, end)
                window = rate * (end - start)
                result["saturation"] = {
                    "rate": round(rate, 1), "requests": count, "window_s": round(end - start, 2),
                    "window_requests": int(window), "cpu_s": round(cpu, 3),
                    "cpu_s_per_1000": round(cpu / window * 1000, 4) if window else None,
                    "attempts": attempt + 1,
                    "driver_cpu_s_per_1000": round(driver_cpu / count * 1000, 4),
                    **served(collector, self.codec, ids),
                }
                progress.say(f"  sustained {rate:,.0f} req/s over {end - start:.1f}s")

                for i, fraction in enumerate(o.rates):
                    offered = max(1.0, fraction * rate)
                    phase = 100 + i
                    driver_cpu = time.process_time()
                    progress.begin(f"{fraction:.0%} load ({offered:,.0f}/s) sending")
                    sent = paced(prod, k.requests_topic, workload, phase, offered, o.duration_s, progress.update)
                    progress.begin(f"{fraction:.0%} load results")
                    wait(phase, len(sent.ids), max(60.0, 2 * o.duration_s))
                    last = max(collector.arrivals[rid] for rid in sent.ids)
                    cpu = meter.cpu_between(sent.sent_at[0], last)
                    lat = latencies(collector, sent, min(2.0, 0.2 * o.duration_s))
                    result["paced"].append({
                        "fraction": fraction, "offered_rate": round(offered, 1),
                        "producer_max_behind_ms": round(sent.max_behind_s * 1000, 1),
                        "cpu_s_per_1000": round(cpu / len(sent.ids) * 1000, 4),
                        "driver_cpu_s_per_1000": round((time.process_time() - driver_cpu) / len(sent.ids) * 1000, 4),
                        **lat, **served(collector, self.codec, sent.ids),
                    })
                    progress.say(f"  {fraction:.0%}: p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, "
                                 f"kept up: {lat['kept_up']}")
            result["peak_rss_bytes"] = meter.peak_rss
            result["duplicates"] = collector.duplicates
        finally:
            system.stop()
            collector.close()
            prod.flush(10)
            if not o.keep_topics:
                delete_topics(settings)
        return result


def _first_estimate(collector: Collector, ids: list[str], began: float) -> float:
    """Rough rate of the warm-up: over its results' spread, or since the start if they came at once."""
    times = sorted(collector.arrivals[rid] for rid in ids if rid in collector.arrivals)
    if len(times) > 10 and times[-1] - times[0] > 0.2:
        return (len(times) - 1) / (times[-1] - times[0])
    return max(1.0, len(times) / max(times[-1] - began, 1e-3)) if times else 100.0


def parse(argv: list[str] | None = None) -> tuple[Options, int, bool]:
    """Command line to (options, port offset, whether to leave the stack running)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--systems", default="all",
                        help=f"comma-separated: {', '.join(SYSTEMS)}, or the groups all, aimass, peers")
    parser.add_argument("--models", default=None, help="comma-separated (default digits,heavy; smoke: digits)")
    parser.add_argument("--duration", type=float, default=None, help="seconds per phase (default 30; smoke 2)")
    parser.add_argument("--rates", default="0.5,0.8", help="paced loads as fractions of the sustained rate")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--smoke", action="store_true", help="tiny counts and short phases: checks the harness")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / "out")
    parser.add_argument("--port-offset", type=int, default=0, help="move the bench stack's ports and state folder")
    parser.add_argument("--keep-stack", action="store_true", help="leave the bench stack running at the end")
    parser.add_argument("--keep-topics", action="store_true", help="keep each run's topics (disk!)")
    parser.add_argument("--soak", action="store_true",
                        help="run the soak instead (`python -m bench.soak`; see `python -m bench.soak --help`)")
    args = parser.parse_args(argv)
    smoke = args.smoke
    options = Options(
        systems=expand(args.systems),
        models=[m for m in (args.models or ("digits" if smoke else "digits,heavy")).split(",") if m],
        duration_s=args.duration if args.duration is not None else (2.0 if smoke else 30.0),
        rates=[float(r) for r in args.rates.split(",") if r],
        seed=args.seed,
        smoke=smoke,
        out=args.out.resolve(),
        warmup_requests=100 if smoke else 2000,
        min_requests=200 if smoke else 1000,
        start_timeout_s=300.0,
        keep_topics=args.keep_topics,
    )
    return options, args.port_offset, args.keep_stack


def run_bench(options: Options, settings: Settings, manage_stack: bool = True, keep_stack: bool = False,
              progress: Progress | None = None) -> dict[str, Any]:
    """Run the bench on ``settings``' stack (started here, and stopped unless ``keep_stack``, when
    ``manage_stack``; else the stack is someone else's and must be running)."""
    from aimass.tools.demo import build_demo_models

    build_demo_models(settings.paths.models_dir)
    runs = len(options.models) * len(options.systems)
    progress = progress or Progress(runs)
    flink = any(s.startswith("aimass-") for s in options.systems)
    with BenchStack(settings, flink=flink, manage=manage_stack, keep=keep_stack, say=progress.say):
        data = Bench(options, settings, progress).run()
    written = report.write(data, options.out)
    progress.say("wrote " + ", ".join(str(p) for p in written))
    return data


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; exit status 1 when a run failed or a request went unserved.

    ``--soak`` hands the other arguments to :func:`bench.soak.main`.
    """
    args = sys.argv[1:] if argv is None else argv
    if "--soak" in args:
        from bench.soak import main as soak

        return soak([a for a in args if a != "--soak"])
    options, offset, keep = parse(argv)
    settings = Settings.load(env=bench_env(offset))
    data = run_bench(options, settings, keep_stack=keep)
    failed = [r for r in data["runs"] if "error" in r or not r["saturation"].get("all_served")]
    failed += [r for r in data["raw"].values() if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
