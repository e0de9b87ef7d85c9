"""The soak: the AI Mass job under a constant load for a long time, sampled every few seconds.

``python -m bench.soak`` (or ``python -m bench --soak``, ``make soak``) starts the bench's own
stack (:mod:`bench.stack`), measures the job's sustained rate (unless ``--rate`` is given),
then produces at ``--share`` of it for ``--duration`` and samples, every ``--interval``: the
TaskManager's CPU and CPU per request, results/s, backlog and lag, latency, the latest
checkpoint, RSS and bytes on disk. It writes ``soak.jsonl`` as it goes, then ``soak.json``,
``soak.md`` (the issue's soak targets, reported, not asserted) and ``soak-*.png``. The exit
status is 1 only when the run failed: the job died, or results were missing after the drain.
See bench/README.md ("The soak").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from aimass.contract.codec import Codec
from aimass.serving.models import ModelRepository
from aimass.settings import PROJECT_ROOT, Settings
from aimass.stack.local import Say
from aimass.stack.procs import StackError
from bench import soak_report
from bench.driver import preload, producer
from bench.soak_job import (
    DEAD,
    SEED,
    SOAK_PHASE,
    WARMUP_PHASE,
    SoakError,
    SoakOptions,
    check_overrides,
    job_settings,
    measure_rate,
    start_job,
    stop_job,
)
from bench.soak_plot import plots
from bench.soak_probe import Probe, Schedule, SoakCollector
from bench.stack import BenchStack, bench_env, create_topics, delete_topics
from bench.workload import Workload, model_inputs, request_id


class Sampler:
    """Takes a sample every ``interval_s`` from ``start`` in a thread of its own; writes each to ``sink``."""

    def __init__(self, probe: Probe, collector: SoakCollector, schedule: Schedule, options: SoakOptions,
                 sink: TextIO, say: Say) -> None:
        self.probe, self.collector, self.schedule, self.options = probe, collector, schedule, options
        self.sink, self.say = sink, say
        self.samples: list[dict[str, Any]] = []
        self.sent = 0
        self.failed: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-soak-sampler", daemon=True)
        self._last = (schedule.start, 0, 0)  # time, results, latencies
        self._said = schedule.start

    def start(self) -> None:
        """Baseline now (CPU), first sample one interval after the schedule's start."""
        self.probe.cpu_rss()
        self._thread.start()

    def finish(self, timeout_s: float) -> None:
        """Wait (at most ``timeout_s``) for the last sample, taken at the end of the duration."""
        self._thread.join(timeout_s)

    def stop(self) -> None:
        """Stop sampling (after the one in progress)."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        o, start = self.options, self.schedule.start
        n = max(1, int(np.ceil(o.duration_s / o.interval_s - 1e-9)))
        for k in range(1, n + 1):
            due = start + min(k * o.interval_s, o.duration_s)
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            try:
                self.sample()
            except Exception as exc:  # noqa: BLE001 - a sampling error is noted, the soak goes on
                self.say(f"[soak] sample failed: {type(exc).__name__}: {exc}")
            if self.failed:
                return

    def sample(self) -> dict[str, Any]:
        """One sample now (also appended to ``samples`` and the sink)."""
        c, s = self.collector, self.schedule
        cpu_s, rss, pids = self.probe.cpu_rss()
        now, results, lat_end, sent = time.monotonic(), c.results, len(c.latencies_ms), self.sent
        before, before_results, lat_start = self._last
        self._last = (now, results, lat_end)
        interval = max(now - before, 1e-6)
        got = results - before_results
        lat = soak_report.latency_percentiles(c.latencies_ms[lat_start:lat_end])
        state = self.probe.job_state()
        sample: dict[str, Any] = {
            "t_s": round(now - s.start, 3), "interval_s": round(interval, 3), "offered_rate": s.rate,
            "sent": sent, "results": results, "results_in_interval": got,
            "results_per_s": round(got / interval, 1), "backlog": sent - results,
            "cpu_s": round(cpu_s, 4), "cpu_cores": round(cpu_s / interval, 4),
            "cpu_us_per_request": round(cpu_s / got * 1e6, 2) if got else None,
            "rss_bytes": rss, "p50_ms": lat["p50_ms"], "p99_ms": lat["p99_ms"], "latency_count": lat_end - lat_start,
            "duplicates": c.duplicates, "job_state": state, "taskmanager_pids": pids,
            **self.probe.checkpoint(), **self.probe.kafka_counts(), **self.probe.disk(),
        }
        self.samples.append(sample)
        self.sink.write(json.dumps(sample) + "\n")
        self.sink.flush()
        if state in DEAD:
            self.failed = f"the job is {state} at {sample['t_s']:.0f} s"
        if now - self._said >= self.options.progress_every_s - self.options.interval_s / 2 or self.failed:
            self._said = now
            self.say(progress_line(sample, self.options.duration_s))
        return sample


def progress_line(s: dict[str, Any], duration_s: float) -> str:
    """``[soak  120/1800 s] 998/s of 1,000/s, CPU 0.41 cores 410 µs/req, backlog 812, ...``."""
    def num(key: str, fmt: str = ",.0f") -> str:
        return "–" if s.get(key) is None else format(s[key], fmt)

    size = "–" if s.get("ckpt_size_bytes") is None else f"{s['ckpt_size_bytes'] / 1024 / 1024:.1f} MB"
    return (f"[soak {s['t_s']:5.0f}/{duration_s:.0f} s] {num('results_per_s')}/s of {num('offered_rate')}/s, "
            f"CPU {num('cpu_cores', '.2f')} cores {num('cpu_us_per_request')} µs/req, backlog {num('backlog')}, "
            f"lag {num('lag')}, p50/p99 {num('p50_ms')}/{num('p99_ms')} ms, ckpt {size} "
            f"{num('ckpt_duration_ms')} ms, RSS {s['rss_bytes'] / 1024 / 1024:,.0f} MB, {s['job_state']}")


def pace(prod: Any, topic: str, workload: Workload, schedule: Schedule, sampler: Sampler) -> int:
    """Open-loop production of the schedule's requests, built as they are sent; stops if the job died."""
    seed, phase, rate, count, start = workload.seed, schedule.phase, schedule.rate, schedule.count, schedule.start
    sent = 0
    while sent < count and sampler.failed is None:
        now = time.monotonic()
        due = min(count, int((now - start) * rate) + 1) if now >= start else 0
        for i in range(sent, due):
            rid = request_id(seed, phase, i)
            value, key = workload.payload(rid, i), rid.encode()
            while True:
                try:
                    prod.produce(topic, value=value, key=key)
                    break
                except BufferError:  # local queue full: let it drain
                    prod.poll(0.01)
        sent = max(sent, due)
        sampler.sent = sent
        prod.poll(0)
        time.sleep(max(0.0, min(0.002, start + sent / rate - time.monotonic())))
    prod.flush(60)
    return sent


def soak(base: Settings, options: SoakOptions, rate: float, workload: Workload,
         say: Say) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the soak itself on fresh topics and a fresh job; returns its summary (with ``run.failed``)
    and its samples."""
    o = options
    name = f"soak-{o.model}-{uuid.uuid4().hex[:6]}"
    settings, sets = job_settings(base, name, o)
    k = settings.kafka
    schedule = Schedule(SOAK_PHASE, int(rate * o.duration_s) + 1, rate)
    check_every = 1 if o.smoke else max(1, round(rate / 100))  # decode about 100 results/s
    meta: dict[str, Any] = {"run_name": name, "rate": round(rate, 1), "duration_s": o.duration_s,
                            "checkpoint_interval_ms": getattr(settings.job, "checkpoint_interval_ms", 1000),
                            "dedup_ttl_s": getattr(settings.job, "dedup_ttl_s", None), "started_epoch_ms": 0,
                            "topics": [k.requests_topic, k.results_topic, k.dead_letter_topic]}
    run: dict[str, Any] = {"failed": None}
    samples: list[dict[str, Any]] = []
    probe: Probe | None = None
    failed_before = 0
    create_topics(settings)
    collector = SoakCollector(k.bootstrap, k.results_topic, k.partitions, Codec(settings.paths.schemas_dir),
                              schedule, check_every).start()
    prod = producer(k.bootstrap)
    try:
        warm = preload(prod, k.requests_topic, workload, WARMUP_PHASE, o.warmup_requests)
        say(f"soak job starting ({o.delivery}, parallelism {o.parallelism}, overrides {o.overrides or 'none'}) ...")
        meta["job_id"] = job_id = start_job(settings, sets)
        if not collector.wait(len(warm), o.start_timeout_s, other=True):
            raise SoakError(f"only {collector.other} of {len(warm)} warm-up results within {o.start_timeout_s:.0f} s")
        probe = Probe(settings, job_id)
        probe.checkpoint()  # the failures of the job's start are not the soak's
        failed_before = probe.checkpoints.failed
        say(f"soak: {rate:,.0f} requests/s for {o.duration_s:.0f} s, a sample every {o.interval_s:g} s "
            f"-> {o.out / 'soak.jsonl'}")
        with open(o.out / "soak.jsonl", "w", encoding="utf-8") as sink:
            schedule.start = time.monotonic() + 0.05
            meta["started_epoch_ms"] = int((time.time() + 0.05) * 1000)
            sampler = Sampler(probe, collector, schedule, o, sink, say)
            samples = sampler.samples
            sampler.start()
            try:
                sent = pace(prod, k.requests_topic, workload, schedule, sampler)
                sampler.finish(max(0.0, schedule.start + o.duration_s - time.monotonic()) + o.interval_s + 30)
            finally:
                sampler.stop()
        drained = drain(collector, probe, sent, rate, meta["checkpoint_interval_ms"], say)
        run.update(drained, sent=sent, failed=sampler.failed or drained.get("failed"))
    except Exception as exc:  # noqa: BLE001 - a failed soak still writes what it sampled
        run["failed"] = run.get("failed") or f"{type(exc).__name__}: {exc}"
        say(f"soak failed: {run['failed']}")
    finally:
        stop_job(settings)
        if probe is not None:
            probe.checkpoint()
            run["ckpts_failed"] = probe.checkpoints.failed - failed_before
            checkpoints = sorted((cid, c) for cid, c in probe.checkpoints.completed.items()
                                 if c[0] >= meta["started_epoch_ms"])
            probe.close()
        else:
            checkpoints = []
        collector.close()
        if not o.keep_topics:
            delete_topics(settings)
    warm_count = sum(s["latency_count"] for s in samples
                     if s["t_s"] - s["interval_s"] / 2 < soak_report.Windows.of(o.duration_s).warmup_s)
    steady = soak_report.latency_percentiles(collector.latencies_ms[warm_count:])
    every = soak_report.latency_percentiles(collector.latencies_ms)
    ok = collector.checked - collector.not_ok
    run.update(answered=collector.results, duplicates=collector.duplicates, checked=collector.checked,
               not_ok=collector.not_ok, mean_batch_size=round(collector.batch_rows / ok, 2) if ok else None,
               p50_ms=steady["p50_ms"], p99_ms=steady["p99_ms"], p50_ms_all=every["p50_ms"], p99_ms_all=every["p99_ms"],
               dead_letters=samples[-1].get("dead_letters") if samples else None)
    meta["run"] = run
    summary = soak_report.summarize(samples, [c for _, c in checkpoints], meta)
    summary["checkpoints"] = [[cid, *c] for cid, c in checkpoints]
    return summary, samples


def drain(collector: SoakCollector, probe: Probe, sent: int, rate: float, interval_ms: float,
          say: Say) -> dict[str, Any]:
    """Wait for every request's result (or the job's death); returns the counts check."""
    backlog = sent - collector.results
    timeout = max(60.0, 30 * interval_ms / 1000, 3 * backlog / rate)
    say(f"soak: production done ({sent:,} sent); draining {backlog:,} (at most {timeout:.0f} s) ...")
    began = time.monotonic()
    failed = None
    while collector.results < sent and time.monotonic() - began < timeout:
        if not collector.wait(sent, 5.0) and (state := probe.job_state()) in DEAD:
            failed = f"the job is {state} during the drain"
            break
    missing = collector.missing(sent)
    if missing and failed is None:
        failed = f"{missing:,} of {sent:,} requests have no result {timeout:.0f} s after the last was sent"
    return {"missing": missing, "drain_s": round(time.monotonic() - began, 1), **({"failed": failed} if failed else {})}


def write(summary: dict[str, Any], samples: list[dict[str, Any]], out: Path) -> list[Path]:
    """``soak.json``, ``soak.md`` and the plots (``soak.jsonl`` was written while sampling)."""
    (out / "soak.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out / "soak.md").write_text(soak_report.markdown(summary), encoding="utf-8")
    return [out / "soak.jsonl", out / "soak.json", out / "soak.md", *plots(samples, summary, out)]


def run_soak(options: SoakOptions, settings: Settings, manage_stack: bool = True, keep_stack: bool = False,
             say: Say = print, command: str = "bench.soak.run_soak(...)") -> dict[str, Any]:
    """Measure (unless ``options.rate``), soak and write the report, on ``settings``' stack.

    With ``manage_stack`` the stack is started here (and stopped at the end unless
    ``keep_stack``), leaving what already ran alone; without, it is someone else's and must run.
    ``command`` is how the run was asked for, for the report.
    """
    from aimass.tools.demo import build_demo_models
    from bench.run import _git_commit, _versions

    o = options
    began = time.time()
    check_overrides(o.overrides)
    o.out.mkdir(parents=True, exist_ok=True)
    for stale in [o.out / "soak.jsonl", o.out / "soak.json", o.out / "soak.md", *o.out.glob("soak-*.png")]:
        stale.unlink(missing_ok=True)
    build_demo_models(settings.paths.models_dir)
    target = o.model if o.graph is None else str(json.loads(o.graph.read_text(encoding="utf-8"))["name"])
    workload = Workload.from_inputs(Codec(settings.paths.schemas_dir), target,
                                    model_inputs(o.model, settings.paths.models_dir, o.seed), o.seed)
    with BenchStack(settings, flink=True, manage=manage_stack, keep=keep_stack, say=say):
        if o.graph is not None:
            _deploy_graph(settings, o.graph, say)
        if o.rate is not None:
            rate, sustained, source = o.rate, None, "given"
        else:
            sustained = measure_rate(settings, o, workload, say)
            rate, source = o.share * sustained, f"{o.share:.0%} of the measured {sustained:,.0f}/s"
        summary, samples = soak(settings, o, rate, workload, say)
    summary["meta"].update(
        started=time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(began)),
        machine=f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        commit=_git_commit(), versions=_versions(), command=command,
        model=o.model, graph=None if o.graph is None else target,
        version=ModelRepository(settings.paths.models_dir).resolve(o.model).version,
        delivery=o.delivery, parallelism=o.parallelism, interval_s=o.interval_s, overrides=o.overrides,
        sustained_rate=None if sustained is None else round(sustained, 1), share=o.share, rate_source=source,
        smoke=o.smoke)
    written = write(summary, samples, o.out)
    say("wrote " + ", ".join(str(p) for p in written))
    for t in summary["targets"]:
        say(f"  {t['name']}: {soak_report._fmt(t['value'], 3)} (limit {t['limit']} {t['unit']}) "
            f"{'met' if t['met'] else 'MISSED' if t['met'] is False else 'not measured'}")
    return summary


def _deploy_graph(settings: Settings, path: Path, say: Say) -> None:
    """Publish the folder's models (what the graph names) and the graph, effective at once."""
    from aimass.control.admin import ControlAdmin
    from aimass.graphs.cli import graph_deploy

    with ControlAdmin(settings, activation_ms=0) as admin:
        for line in admin.sync(settings.paths.models_dir, at_submit=True):
            say(line)
        admin.publish(graph_deploy(path.read_text(encoding="utf-8")), in_ms=0)
    say(f"deployed graph {path}")


def parse(argv: list[str] | None = None) -> tuple[SoakOptions, int, bool]:
    """Command line to (options, port offset, whether to leave the stack running)."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", default=None, help="how long to produce: 90, 120s, 30m, 1h (default 30m)")
    parser.add_argument("--share", type=float, default=0.5, help="offered rate as a share of the sustained rate")
    parser.add_argument("--rate", type=float, default=None, help="offered requests/s (skips the rate measurement)")
    parser.add_argument("--model", default="digits", help="the model served (with --graph: whose inputs it takes)")
    parser.add_argument("--graph", type=Path, default=None, metavar="FILE",
                        help="soak a graph: deploy FILE (e.g. examples/graphs/digits-vote.json), send to its name")
    parser.add_argument("--delivery", choices=["exactly-once", "at-least-once"], default="exactly-once")
    parser.add_argument("--parallelism", type=int, default=1)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE", dest="sets",
                        help="a setting for the job, e.g. --set job.dedup_ttl_s=120 (repeatable)")
    parser.add_argument("--measure", default="30s", help="length of the sustained-rate drain (default 30s)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--smoke", action="store_true",
                        help="the harness in 2 minutes: 120 s at 200/s (unless --duration/--rate), no rate measurement")
    parser.add_argument("--out", type=Path, default=None, help="default bench/out/soak (smoke: bench/out/soak-smoke)")
    parser.add_argument("--port-offset", type=int, default=0, help="move the bench stack's ports and state folder")
    parser.add_argument("--keep-stack", action="store_true", help="leave the bench stack running at the end")
    parser.add_argument("--keep-topics", action="store_true", help="keep the soak's topics")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.sets:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item!r}: expected SECTION.FIELD=VALUE")
        overrides[key.strip()] = value
    smoke = args.smoke
    try:
        duration = soak_report.parse_duration(args.duration or ("120s" if smoke else "30m"))
        measure = soak_report.parse_duration(args.measure)
        check_overrides(overrides)
    except ValueError as exc:
        parser.error(str(exc))
    if args.interval <= 0 or not 0 < args.share <= 1.5 or (args.rate is not None and args.rate <= 0):
        parser.error("--interval and --rate must be positive, --share in (0, 1.5]")
    out = args.out or PROJECT_ROOT / "bench" / "out" / ("soak-smoke" if smoke else "soak")
    options = SoakOptions(
        duration_s=duration, share=args.share, rate=args.rate if args.rate is not None else (200.0 if smoke else None),
        model=args.model, graph=args.graph, delivery=args.delivery, parallelism=args.parallelism,
        interval_s=args.interval,
        overrides=overrides, out=out.resolve(), seed=args.seed, measure_s=measure,
        warmup_requests=100 if smoke else 2000, keep_topics=args.keep_topics, smoke=smoke,
    )
    return options, args.port_offset, args.keep_stack


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; exit status 1 only when the run failed (never for a missed target)."""
    args = sys.argv[1:] if argv is None else argv
    options, offset, keep = parse(args)
    settings = Settings.load(env=bench_env(offset))
    try:
        summary = run_soak(options, settings, keep_stack=keep, command="python -m bench.soak " + shlex.join(args))
    except (SoakError, StackError) as exc:  # before the soak began: nothing to report
        print(f"soak failed: {exc}", file=sys.stderr)
        return 1
    return 1 if summary["meta"]["run"].get("failed") else 0


if __name__ == "__main__":
    raise SystemExit(main())
