"""The limit: ONNX Runtime alone in one process, with the job's session options.

For each batch size, two figures in rows/s: ``ort`` (``session.run`` on ready numpy
batches) and ``ort+codec`` (the Kafka-fed systems' per-record work without Kafka: Avro
decode of each request, :class:`aimass.serving.engine.InferenceEngine`, Avro encode of each result,
via :class:`bench.scoring.Scorer`). CPU seconds per 1,000 rows come from
``time.process_time``, peak memory from ``getrusage``. Prints one JSON object.

Run as ``python -m bench.systems.raw_ort --model digits --seconds 5``; paths come from
the ``AIMASS_*`` settings.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from aimass.contract.codec import Codec
from aimass.serving.models import ModelRepository
from aimass.serving.sessions import SessionCache
from aimass.settings import Settings
from bench.scoring import Scorer
from bench.workload import Workload, model_inputs


def _measure(step: Callable[[int], int], seconds: float, warmup_s: float) -> dict[str, float]:
    """Call ``step(i)`` (returns rows done) for ``seconds`` after ``warmup_s`` of warm-up."""
    end = time.perf_counter() + warmup_s
    i = 0
    while time.perf_counter() < end:
        step(i)
        i += 1
    rows, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
    end = wall0 + seconds
    while time.perf_counter() < end:
        rows += step(i)
        i += 1
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"rows_per_s": round(rows / wall, 1), "cpu_s_per_1000": round(cpu / rows * 1000.0, 4), "rows": rows}


def measure(settings: Settings, model: str, batch_sizes: list[int], seconds: float, seed: int) -> dict[str, Any]:
    """Rows/s of ``model`` at each batch size, ORT alone and with the codec."""
    engine = replace(settings.engine, intra_op_threads=1)
    spec = ModelRepository(settings.paths.models_dir).resolve(model)
    session = SessionCache(engine).get(spec)
    inputs = model_inputs(model, settings.paths.models_dir, seed)
    pool = len(next(iter(inputs.values())))
    outputs = list(spec.output_names)
    codec = Codec(settings.paths.schemas_dir)
    workload = Workload.build(codec, model, settings.paths.models_dir, seed)
    _, payloads = workload.batch(0, pool)
    scorer = Scorer(settings)
    warmup_s = min(1.0, seconds / 4)
    figures: dict[str, Any] = {}
    for size in batch_sizes:
        starts = list(range(0, pool - size + 1, size))
        feeds = [{name: rows[a : a + size] for name, rows in inputs.items()} for a in starts]
        chunks = [payloads[a : a + size] for a in starts]

        def ort_step(i: int, feeds: list[dict[str, Any]] = feeds, size: int = size) -> int:
            session.run(outputs, feeds[i % len(feeds)])
            return size

        def codec_step(i: int, chunks: list[list[bytes]] = chunks) -> int:
            return len(scorer.score(chunks[i % len(chunks)]))

        figures[str(size)] = {
            "ort": _measure(ort_step, seconds, warmup_s),
            "ort+codec": _measure(codec_step, seconds, warmup_s),
        }
    return {
        "model": model,
        "version": spec.version,
        "intra_op_threads": engine.intra_op_threads,
        "providers": session.get_providers(),
        "batch_sizes": figures,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def main(argv: list[str] | None = None) -> int:
    """Measure and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per batch size and mode")
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.batch_sizes.split(",") if s]
    print(json.dumps(measure(Settings.load(), args.model, sizes, args.seconds, args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
