"""High-priority latency under a saturating low-priority load, with and without priorities.

``python -m bench.priority_bench [--seconds 30] [--low-rate 2500] [--high-rate 20]`` brings up
the bench stack (two TaskManagers of one slot, parallelism 2) and runs the inference job three
times on topics of its own, each time under the same traffic: low-priority requests at
``--low-rate`` (about twice what the job serves of the scheduling test's slow model, ~1.2 ms a
call, one request per batch) and high-priority ones at ``--high-rate``:

* ``priority``: the high ones sent with priority 10, ``job.overload=shed`` (beyond the admission
  limits, the lowest priority is answered OVERLOADED);
* ``no-priority``: the same requests with priority 0;
* ``window-off``: priority 10, ``job.inflight_batches=0`` (batches go to Python as they fill and
  wait first-in first-out in Flink's buffers and in Kafka: the job before the scheduler);
* ``backpressure`` (on request): priority 10, the default ``job.overload=backpressure`` (the queue
  full, the job stops reading: nothing is refused, and priority orders only what it has read).

For each it prints, and writes to ``bench/results/priority.json``: per class the p50/p99/max
end-to-end latency of OK results (``completed_at_ms - created_at_ms``), OK and OVERLOADED counts
and the OK rate, side by side, with the high-priority p99 as a ratio to the ``priority`` run's.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from aimass.contract.codec import Codec
from aimass.contract.messages import InferenceRequest, InferenceResult, Status
from aimass.control.admin import ControlAdmin
from aimass.settings import PROJECT_ROOT, Settings
from aimass.tools.traffic import collect, consumer, make_request, send_paced
from bench.report import write_figures
from bench.slow_model import WIDTH, slow_model
from bench.stack import BenchStack, bench_env, create_topics, delete_topics, run_settings

SHED = {"job.overload": "shed"}
RUNS = {
    "priority": (SHED, 10),
    "no-priority": (SHED, 0),
    "window-off": ({"job.inflight_batches": "0"}, 10),
    "backpressure": ({}, 10),
}
#: Run by default (``backpressure``, the job's default policy, on request: ``--runs``).
DEFAULT_RUNS = ("priority", "no-priority", "window-off")


def _requests(model: str, priority: int, n: int) -> list[InferenceRequest]:
    x = {"x": np.ones((1, WIDTH), np.float32)}
    out = []
    for _ in range(n):
        r = make_request(model, x)
        out.append(InferenceRequest(r.request_id, model, r.inputs, 0, priority=priority))
    return out


class _Stamped:
    """Requests stamped with their creation time as they are sent (not when built)."""

    def __init__(self, requests: list[InferenceRequest]) -> None:
        self.requests = requests

    def __iter__(self) -> Any:
        for r in self.requests:
            yield InferenceRequest(r.request_id, r.model, r.inputs, int(time.time() * 1000), priority=r.priority)


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    a = np.asarray(values)
    return {"p50_ms": round(float(np.percentile(a, 50)), 1), "p99_ms": round(float(np.percentile(a, 99)), 1),
            "max_ms": round(float(a.max()), 1)}


def one_run(base: Settings, codec: Codec, model: str, name: str, overrides: dict[str, str], high_priority: int,
            seconds: float, low_rate: float, high_rate: float) -> dict[str, Any]:
    from aimass.stack import jobs

    tag = f"prio-{name}-{uuid.uuid4().hex[:6]}"
    settings = run_settings(base, tag)
    create_topics(settings)
    k = settings.kafka
    job_overrides = {"kafka.requests_topic": k.requests_topic, "kafka.results_topic": k.results_topic,
                     "kafka.dead_letter_topic": k.dead_letter_topic, "job.name": tag, "job.consumer_group": tag,
                     "job.transactional_id_prefix": tag, "job.parallelism": "2", **overrides}
    job_settings = Settings.load(env=bench_env(), overrides=job_overrides)
    jobs.submit(job_settings, overrides=job_overrides)
    try:
        warm = _requests(model, 0, 20)
        send_paced(k, codec, k.requests_topic, _Stamped(warm), rate=20)
        cons = consumer(k, k.results_topic, from_beginning=True)
        found: dict[str, InferenceResult] = {}
        _collect(cons, codec, {r.request_id for r in warm}, found, 120)
        low = _requests(model, 0, int(seconds * low_rate))
        high = _requests(model, high_priority, int(seconds * high_rate))
        threads = [threading.Thread(target=send_paced, args=(k, codec, k.requests_topic, _Stamped(reqs), rate))
                   for reqs, rate in ((low, low_rate), (high, high_rate))]
        began = time.monotonic()
        first_ms = int(time.time() * 1000)
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sent_s = time.monotonic() - began
        wanted = {r.request_id for r in low + high}
        _collect(cons, codec, wanted, found, 300)
        cons.close()
    finally:
        jobs.cancel(job_settings)
        delete_topics(settings)
    out: dict[str, Any] = {"sent_s": round(sent_s, 1), "missing": len(wanted - set(found))}
    for cls, reqs in (("high", high), ("low", low)):
        results = [found[r.request_id] for r in reqs if r.request_id in found]
        ok = [r for r in results if r.status is Status.OK]
        lat = [r.timings.end_to_end_ms for r in ok]
        # Before the job read it (producer, Kafka, the source falling behind) vs inside the job.
        before = [r.timings.end_to_end_ms - r.timings.queued_ms - r.timings.inference_ms for r in ok]
        inside = [r.timings.queued_ms for r in ok]
        out[cls] = {"sent": len(reqs), "ok": len(ok),
                    "batch_rows_mean": round(float(np.mean([r.timings.batch_size for r in ok])), 2) if ok else None,
                    "last_result_s": round((max(r.completed_at_ms for r in results) - first_ms) / 1000, 1)
                    if results else None,
                    "overloaded": sum(1 for r in results if r.status is Status.OVERLOADED),
                    "other": sum(1 for r in results if r.status not in (Status.OK, Status.OVERLOADED)),
                    "overloaded_why": sorted({(r.error or "").split(" (job.")[0].split(": ", 1)[-1][:40] + " (job."
                                              + (r.error or "").split(" (job.", 1)[-1][:20]
                                              for r in results if r.status is Status.OVERLOADED})[:4],
                    "ok_per_s": round(len(ok) / sent_s, 1), **_percentiles(lat),
                    "before_job_p50_ms": _percentiles(before)["p50_ms"],
                    "before_job_p99_ms": _percentiles(before)["p99_ms"],
                    "queued_in_job_p50_ms": _percentiles(inside)["p50_ms"],
                    "queued_in_job_p99_ms": _percentiles(inside)["p99_ms"]}
    return out


def _collect(cons: Any, codec: Codec, wanted: set[str], found: dict[str, InferenceResult], timeout_s: float) -> None:
    def keep(result: InferenceResult | None) -> None:
        if result is not None and result.request_id in wanted and result.request_id not in found:
            found[result.request_id] = result

    collect(cons, codec.decode_result, lambda _: wanted <= set(found), timeout_s, keep)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="traffic per run (default 30)")
    parser.add_argument("--low-rate", type=float, default=2500.0, help="low-priority requests/s (default 2500)")
    parser.add_argument("--high-rate", type=float, default=20.0, help="high-priority requests/s (default 20)")
    parser.add_argument("--runs", default=",".join(DEFAULT_RUNS), help=f"comma-separated, of {', '.join(RUNS)}")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / "results" / "priority.json")
    args = parser.parse_args(argv)
    base = Settings.load(env=bench_env())
    codec = Codec(base.paths.schemas_dir)
    import tempfile

    figures: dict[str, Any] = {
        "command": f"python -m bench.priority_bench --seconds {args.seconds:g} --low-rate {args.low_rate:g} "
                   f"--high-rate {args.high_rate:g}",
        "model": "slow (bench/slow_model.py: 300 x tanh(x @ W), 256 wide, ~1.2 ms a call)",
        "runs": {}}
    with tempfile.TemporaryDirectory(prefix="aimass-prio-") as tmp, BenchStack(base, flink=True):
        model = f"slow-{uuid.uuid4().hex[:6]}"
        with ControlAdmin(base, activation_ms=0) as admin:
            admin.deploy(slow_model(Path(tmp), model), upload_bytes=False)
        for name in args.runs.split(","):
            overrides, priority = RUNS[name]
            print(f"run {name} ...", flush=True)
            figures["runs"][name] = one_run(base, codec, model, name, overrides, priority, args.seconds,
                                            args.low_rate, args.high_rate)
            print(f"  {json.dumps(figures['runs'][name])}", flush=True)
    ref = figures["runs"].get("priority", {}).get("high", {}).get("p99_ms")
    print(f"\n{'run':<12} {'high p50':>9} {'high p99':>9} {'x prio':>7} {'low p50':>9} {'low p99':>9} "
          f"{'ok/s':>7} {'overloaded':>10}")
    for name, run in figures["runs"].items():
        h, lo = run["high"], run["low"]
        ratio = f"{h['p99_ms'] / ref:.1f}" if ref and h["p99_ms"] else "-"
        print(f"{name:<12} {h['p50_ms']!s:>9} {h['p99_ms']!s:>9} {ratio:>7} {lo['p50_ms']!s:>9} {lo['p99_ms']!s:>9} "
              f"{h['ok_per_s'] + lo['ok_per_s']:>7.0f} {h['overloaded'] + lo['overloaded']:>10}")
    write_figures(args.out, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
