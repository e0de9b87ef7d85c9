"""What a graph costs against a single model, in one process, side by side (no Kafka, no Flink).

Per request, on batches of ``--batch`` one-row digits requests: the raw ONNX Runtime call on the
batch (the limit), the engine serving the batch (``InferenceEngine.run``), a one-step graph over
the same model (the graph hop's own cost), an ensemble of three digits versions merged by mean,
and three direct runs plus a numpy mean (what a user would write by hand). Prints microseconds
per request and ratios to the raw call; ``--json`` writes them.

    .venv/bin/python -m bench.graph_bench --batch 32 --seconds 3

``--stack`` measures the same three targets end to end instead, through Kafka and the job on
the bench stack (exactly-once, parallelism 1, fresh topics per target, the harness of
``python -m bench``): digits itself, a one-step graph of it and an ensemble of three digits
versions, each by its sustained rate on a backlog, CPU per 1,000 requests and p50/p99 latency at
half that rate, with raw ONNX Runtime's limit in the same run; ratios to the single model.

    .venv/bin/python -m bench.graph_bench --stack --seconds 15
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

from aimass.contract.messages import InferenceRequest, Tensor
from aimass.graphs.run import GraphRunner
from aimass.graphs.spec import Member, check
from aimass.serving.engine import InferenceEngine
from aimass.serving.models import ModelRepository
from aimass.serving.sessions import SessionCache
from aimass.settings import PROJECT_ROOT, EngineSettings, JobSettings, Settings
from bench.report import write_figures


def _timed(fn: Callable[[], object], seconds: float) -> float:
    """Seconds per call of ``fn``, the best of five stretches of ``seconds / 5``."""
    fn()
    best = float("inf")
    for _ in range(5):
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds / 5:
            fn()
            calls += 1
        best = min(best, (time.perf_counter() - started) / calls)
    return best


ONE_STEP: dict[str, object] = {"sequence": [{"model": "digits", "version": "2", "outputs": ["probabilities"]}]}
THREE: dict[str, object] = {
    "ensemble": [{"name": f"m{i}", "model": "digits", "version": v, "outputs": ["probabilities"]}
                 for i, v in enumerate(("1", "2", "1"))], "merge": "mean"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32, help="requests per batch (default 32)")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="measuring time per system (default 3; with --stack, each phase's length)")
    parser.add_argument("--stack", action="store_true", help="end to end through Kafka and the job (minutes)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    if args.stack:
        return stack_main(args.seconds, args.json or PROJECT_ROOT / "bench" / "results" / "graphs-stack.json")

    models = Settings.load().paths.models_dir
    job = JobSettings(max_batch_size=max(64, args.batch))
    repository = ModelRepository(models, rescan_interval_s=1e9)  # no folder scans in the timed loop
    engine = InferenceEngine(repository, SessionCache(EngineSettings(use_gpu=False)), job)

    def lookup(model: str, version: str | None) -> Member:
        spec = repository.resolve(model, version)
        return Member(spec.version, spec.inputs, spec.outputs)

    def runner(root: dict[str, object]) -> GraphRunner:
        checked = check({"name": "g", "version": "1", "root": root}, lookup)
        return GraphRunner(engine, checked.definition, [t.name for t in checked.outputs])

    one, three = runner(ONE_STEP), runner(THREE)
    rng = np.random.default_rng(1)
    pixels = rng.random((args.batch, 64), dtype=np.float32)
    now = int(time.time() * 1000)
    requests = [InferenceRequest(f"r-{i}", "g", (Tensor.from_numpy("pixels", pixels[i:i + 1]),), now)
                for i in range(args.batch)]
    model_requests = [InferenceRequest(r.request_id, "digits", r.inputs, now, "2") for r in requests]
    sessions = {v: ort.InferenceSession(str(models / "digits" / v / "model.onnx"), providers=["CPUExecutionProvider"])
                for v in ("1", "2")}

    def by_hand() -> object:
        outs = [sessions[v].run(["probabilities"], {"pixels": pixels})[0] for v in ("1", "2", "1")]
        return np.mean(np.stack(outs), axis=0)

    systems: dict[str, Callable[[], object]] = {
        "raw onnxruntime (one model)": lambda: sessions["2"].run(["probabilities"], {"pixels": pixels}),
        "engine (one model)": lambda: engine.run(model_requests, [now] * args.batch, now),
        "graph of one step": lambda: one.run(requests, now),
        "by hand: 3 runs + numpy mean": by_hand,
        "graph ensemble of 3 (mean)": lambda: three.run(requests, now),
    }
    figures = {name: _timed(fn, args.seconds) / args.batch * 1e6 for name, fn in systems.items()}
    raw = figures["raw onnxruntime (one model)"]
    engine_us = figures["engine (one model)"]
    print(f"graph bench: batches of {args.batch} one-row digits requests, best of 5, microseconds per request")
    print(f"{'system':<32}{'us/request':>12}{'x raw':>8}{'x engine':>10}")
    for name, us in figures.items():
        print(f"{name:<32}{us:>12.1f}{us / raw:>8.2f}{us / engine_us:>10.2f}")
    hop = figures["graph of one step"] - engine_us
    print(f"graph hop overhead: {hop:.1f} us per request ({figures['graph of one step'] / engine_us:.2f}x the engine)")
    if args.json:
        args.json.write_text(json.dumps({"batch": args.batch, "us_per_request": figures}, indent=2) + "\n")
    return 0


def stack_main(seconds: float, out: Path) -> int:
    """The three targets end to end on the bench stack (see the module docstring)."""
    import uuid

    from aimass.control.admin import ControlAdmin
    from aimass.graphs.cli import graph_deploy
    from aimass.tools.demo import build_demo_models
    from bench.progress import Progress
    from bench.run import Bench, Options
    from bench.stack import BenchStack, bench_env

    settings = Settings.load(env=bench_env())
    build_demo_models(settings.paths.models_dir)
    tag = uuid.uuid4().hex[:6]
    graphs = {f"one-step-{tag}": ONE_STEP, f"ensemble3-{tag}": THREE}
    targets = ["digits", *graphs]
    # A first backlog of seconds, not the warm-up's guess: exactly-once results arrive a
    # checkpoint at a time, and a backlog served in one chunk misleads the resizing.
    options = Options(systems=["aimass-eo-p1"], models=targets, duration_s=seconds, rates=[0.5],
                      min_requests=int(seconds * 3000), max_requests=int(seconds * 40000))
    progress = Progress(len(targets) + 1)
    with BenchStack(settings, flink=True, say=progress.say):
        with ControlAdmin(settings, activation_ms=0) as admin:
            for line in admin.sync(settings.paths.models_dir, at_submit=True):  # what the graphs name
                progress.say(line)
            for name, root in graphs.items():
                admin.publish(graph_deploy(json.dumps({"name": name, "version": "1", "root": root})), in_ms=0)
        bench = Bench(options, settings, progress)
        progress.run("raw ONNX Runtime digits")
        raw = bench.raw("digits")
        runs = {}
        for target in targets:
            progress.run(f"aimass-eo-p1 {target}")
            runs[target] = bench.kafka_fed("aimass-eo-p1", target, inputs_of="digits")
    limit = max(v["ort"]["rows_per_s"] for v in raw["batch_sizes"].values())
    single = runs["digits"]["saturation"]
    print(f"\ngraph bench, end to end (Kafka, exactly-once job, parallelism 1); raw ONNX Runtime digits "
          f"limit {limit:,.0f} rows/s")
    print(f"{'target':<22}{'req/s':>9}{'x single':>10}{'x raw':>8}{'cpu ms/1000':>13}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'served':>8}")
    figures: dict[str, object] = {"command": f"python -m bench.graph_bench --stack --seconds {seconds:g}",
                                  "raw_ort_rows_per_s": limit, "runs": runs}
    for target, run in runs.items():
        sat, half = run["saturation"], run["paced"][0]
        label = "digits (one model)" if target == "digits" else target.rsplit("-", 1)[0]
        print(f"{label:<22}{sat['rate']:>9,.0f}{sat['rate'] / single['rate']:>10.2f}{sat['rate'] / limit:>8.3f}"
              f"{sat['cpu_s_per_1000'] * 1000:>13.1f}{half['p50_ms']!s:>9}{half['p99_ms']!s:>9}"
              f"{str(sat['all_served'] and half['all_served']):>8}")
    hop = 1000 / runs[targets[1]]["saturation"]["rate"] - 1000 / single["rate"]
    print(f"one graph hop: {hop * 1000:+.1f} us per request of wall time at saturation")
    write_figures(out, figures)
    return 0 if all(r["saturation"]["all_served"] for r in runs.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
