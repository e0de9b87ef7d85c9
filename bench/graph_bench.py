"""What a graph costs against a single model, in one process, side by side (no Kafka, no Flink).

Per request, on batches of ``--batch`` one-row digits requests: the raw ONNX Runtime call on the
batch (the limit), the engine serving the batch (``InferenceEngine.run``), a one-step graph over
the same model (the graph hop's own cost), an ensemble of three digits versions merged by mean,
and three direct runs plus a numpy mean (what a user would write by hand). Prints microseconds
per request and ratios to the raw call; ``--json`` writes them.

    .venv/bin/python -m bench.graph_bench --batch 32 --seconds 3
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

from aimass.engine import InferenceEngine
from aimass.graphs.run import GraphRunner
from aimass.graphs.spec import Member, check
from aimass.messages import InferenceRequest, Tensor
from aimass.models import ModelRepository, SessionCache
from aimass.settings import JobSettings, Settings


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32, help="requests per batch (default 32)")
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per system (default 3)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)

    models = Settings.load().paths.models_dir
    job = JobSettings(use_gpu=False, max_batch_size=max(64, args.batch))
    repository = ModelRepository(models, rescan_interval_s=1e9)  # no folder scans in the timed loop
    engine = InferenceEngine(repository, SessionCache(job), job)

    def lookup(model: str, version: str | None) -> Member:
        spec = repository.resolve(model, version)
        return Member(spec.version, spec.inputs, spec.outputs)

    def runner(root: dict[str, object]) -> GraphRunner:
        checked = check({"name": "g", "version": "1", "root": root}, lookup)
        return GraphRunner(engine, checked.definition, [t.name for t in checked.outputs])

    one = runner({"sequence": [{"model": "digits", "version": "2", "outputs": ["probabilities"]}]})
    members = [{"name": f"m{i}", "model": "digits", "version": v, "outputs": ["probabilities"]}
               for i, v in enumerate(("1", "2", "1"))]
    three = runner({"ensemble": members, "merge": "mean"})
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


if __name__ == "__main__":
    raise SystemExit(main())
