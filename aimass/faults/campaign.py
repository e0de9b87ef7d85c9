"""A fault campaign on a running stack and job: paced traffic, bad records, kills, the verdict.

Phases:

1. **Bad input only**: a few hundred bad records of every kind and no fault; the job's
   ``numRestarts`` must not move (bad input is data, never a crash).
2. **Mixed traffic under faults**: paced ``digits`` requests with about 1 % bad records
   mixed in, while TaskManagers are SIGKILLed at random (seeded) moments, some right when a
   checkpoint is IN_PROGRESS, and the broker is restarted.
3. **Settle**: wait for every answer, then linger a few checkpoint intervals so that a late
   duplicate would be seen.

Results and dead letters are read with ``read_committed`` in exactly-once mode and with
``read_uncommitted`` in at-least-once mode, from the end of the topics at start, and judged by
:func:`aimass.faults.oracle.judge`. Used by ``python -m aimass.faults`` and by the
integration smoke test (on the shared test stack).
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from aimass.contract.codec import Codec
from aimass.contract.messages import Reason, Status
from aimass.faults.fuzz import Mutator, load_corpus
from aimass.faults.inject import (
    Failure,
    Fault,
    failure_times,
    failures,
    num_restarts,
)
from aimass.faults.malformed import KINDS, BadRecord, digits_request
from aimass.faults.oracle import Expectation, Verdict, digest, judge, longest_gap, recovery_times
from aimass.faults.plan import Plan, bad_records, largest_value
from aimass.faults.reader import Reader
from aimass.faults.schedule import FaultSchedule
from aimass.settings import Settings
from aimass.stack import jobs
from aimass.stack.local import LocalStack

Say = Callable[[str], None]


class Campaign:
    """One campaign against ``job_id`` on ``stack``.

    Args:
        settings: Settings of the stack and job (topics, delivery mode, payload limit).
        stack: The stack whose TaskManagers and broker are faulted.
        job_id: The running inference job.
        plan: What to send and break.
        say: Progress lines.
    """

    def __init__(self, settings: Settings, stack: LocalStack, job_id: str, plan: Plan, say: Say = print) -> None:
        self.settings = settings
        self.stack = stack
        self.job_id = job_id
        self.plan = plan
        self.say = say
        self.mode = settings.job.delivery
        self.codec = Codec(settings.paths.schemas_dir)
        self.rng = random.Random(plan.seed)  # noqa: S311 - repeatable campaigns, not secrets
        self.prefix = f"faults-{uuid.UUID(int=self.rng.getrandbits(128)).hex[:8]}-"
        self.bad = bad_records(settings, self.codec, self.rng, self.prefix, plan.near_limit_oversized)
        self.fuzzer = Mutator(self.codec, self.rng, self.prefix)
        self.expected: dict[str, Expectation] = {}
        self.dead_expected: dict[str, Reason | None] = {}
        self.dead_if_error: dict[str, str] = {}
        """Request id -> digest of a fuzzed record: its dead letter is owed if its result is not ok."""
        self.bad_kinds: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.read = Reader(settings, self.codec, self.prefix, say)
        self.restart_samples: list[tuple[float, int]] = []
        self.failures_seen: dict[tuple[int, str, str], Failure] = {}
        """Every entry of the job's exception history seen while polling (it keeps only the newest)."""
        self.producer_errors: list[str] = []
        self.withdrawn: set[str] = set()
        self.campaign_problems: list[str] = []
        """What kept the campaign itself from its plan (a fault the job never recovered from)."""
        self._stop = threading.Event()
        self._lock = threading.Lock()

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Run the three phases and return the report (see :mod:`aimass.faults.report`)."""
        from aimass.tools.demo import load_holdout
        from aimass.tools.traffic import producer

        images, _ = load_holdout(self.settings.paths.models_dir)
        expected_outputs = self._direct_outputs(images)
        monitor = threading.Thread(target=self._monitor_restarts, name="faults-restarts", daemon=True)
        prod = producer(self.settings.kafka.bootstrap)
        self.read.start()
        monitor.start()
        started = time.monotonic()
        try:
            # Phase 1: bad input only, no fault.
            restarts_before_bad = num_restarts(self.stack.flink, self.job_id)
            bad_start, bad_start_ms = time.monotonic(), int(time.time() * 1000)
            bad_only = [self._make_bad() for _ in range(self.plan.bad_only)]
            if self.plan.corpus:
                corpus = list(load_corpus(Path(self.plan.corpus), largest_value(self.settings), self.codec,
                                          self.settings.job.max_payload_bytes))
                self.read.also.update(r.request_id for r in corpus if r.request_id is not None)
                bad_only += corpus
            self.say(f"phase 1: {len(bad_only)} bad records only, no fault")
            self._send_paced(prod, [(record, None) for record in bad_only], max(self.plan.rate, 50.0))
            self._wait_answers(self.plan.settle_s)
            throughput = self._throughput(prod, images, expected_outputs)
            # The REST API refreshes job metrics every 2 s here, 10 s by default (metrics.fetcher.update-interval).
            time.sleep(max(12.0, 4 * self.settings.job.checkpoint_interval_ms / 1000))
            restarts_after_bad = num_restarts(self.stack.flink, self.job_id)
            bad_end = time.monotonic()
            failures = [t for t in failure_times(self.stack.flink, self.job_id) if t >= bad_start_ms]
            detail = self.stack.flink.rest(f"/jobs/{self.job_id}")
            bad_phase = {
                "records": len(bad_only) + sum(b["bad"] for b in throughput.get("bursts", [])),
                "restarts": restarts_after_bad - restarts_before_bad,
                "failures": len(failures),
                "job_state_after": detail["state"],
                "seconds": round(bad_end - bad_start, 1),
                "throughput": throughput,
            }
            self.say(f"phase 1: numRestarts {restarts_before_bad} -> {restarts_after_bad}, {len(failures)} "
                     f"failures recorded, job {detail['state']}")

            # Phase 2: mixed traffic under faults.
            self._fit_traffic_to_faults()
            traffic = self._mixed_traffic(images, expected_outputs)
            duration = len(traffic) / self.plan.rate
            self.say(f"phase 2: {self.plan.requests} requests + {len(traffic) - self.plan.requests} bad records "
                     f"at {self.plan.rate:.0f}/s (~{duration:.0f} s) with {self.plan.kills} TaskManager kills "
                     f"(+{self.plan.back_to_back_kills} back-to-back), {self.plan.python_worker_kills} Python worker "
                     f"kills and {self.plan.broker_restarts} broker restarts")
            restarts_before_mixed = num_restarts(self.stack.flink, self.job_id)
            mixed_start, mixed_start_ms = time.monotonic(), int(time.time() * 1000)
            sender = threading.Thread(target=self._send_paced, args=(prod, traffic, self.plan.rate),
                                      name="faults-sender", daemon=True)
            sender.start()
            schedule = FaultSchedule(self.stack, self.job_id, self.plan, self.rng,
                                     self.settings.job.checkpoint_interval_ms, self._wait_recovered, self.say)
            faults = schedule.run(mixed_start, duration)
            self.campaign_problems += schedule.problems
            sender.join()

            # Phase 3: settle and linger.
            self._wait_answers(self.plan.settle_s)
            try:
                jobs.wait_running(self.stack.flink, self.job_id, timeout_s=self.plan.recover_timeout_s)
            except Exception as exc:  # noqa: BLE001 - reported as a failed campaign, not a traceback
                self.campaign_problems.append(f"the job is not RUNNING after the faults: {exc}")
            self._linger()
            time.sleep(10.0)  # metrics refresh (see phase 1)
            end, end_ms = time.monotonic(), int(time.time() * 1000)
            restarts_end = num_restarts(self.stack.flink, self.job_id)
            failures = [t for t in failure_times(self.stack.flink, self.job_id) if t >= mixed_start_ms]
        finally:
            self._stop.set()
            prod.close(timeout=10)
            self.read.stop()
            monitor.join(timeout=10)
        verdict = self._verdict()
        return self._report(verdict, faults, bad_phase, restarts_before_mixed, restarts_end, failures,
                            (mixed_start, mixed_start_ms), (end, end_ms), started)

    # -- traffic ---------------------------------------------------------------------------

    def _direct_outputs(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs of the newest serving ``digits`` on every hold-out image, by direct ONNX Runtime."""
        import onnxruntime as ort

        from aimass.serving.models import ModelRepository

        spec = ModelRepository(self.settings.paths.models_dir).resolve("digits")
        session = ort.InferenceSession(str(spec.onnx_path), providers=["CPUExecutionProvider"])
        names = list(spec.output_names)
        arrays = session.run(names, {"pixels": images.astype(np.float32)})
        return dict(zip(names, arrays, strict=True))

    def _make_bad(self) -> BadRecord:
        """The next bad record: a fuzzed one (``fuzz_share`` of them) or one of the next kind."""
        if self.rng.random() < self.plan.fuzz_share:
            return self.fuzzer.make()
        return self.bad.make()

    def _expect_bad(self, record: BadRecord) -> None:
        with self._lock:
            self.bad_kinds[record.kind] = self.bad_kinds.get(record.kind, 0) + 1
            key = digest(record.value)
            if record.reason is None and record.request_id is not None:  # fuzzed: any answer, see fuzz
                self.expected[record.request_id] = Expectation(None)
                self.dead_if_error[record.request_id] = key
                return
            self.dead_expected[key] = record.reason
            if record.request_id is not None and record.status is not None:
                self.expected[record.request_id] = Expectation(record.status)

    def _throughput(self, prod: Any, images: np.ndarray, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        """Bursts of valid requests, alternately clean and with ``bad_fraction`` bad records, each
        sent as fast as the producer goes: the job's service rate for both, and the loss.

        The rate is taken from the results' ``completed_at_ms`` (when the job finished them), not
        from when they became readable, which exactly-once delays to the next checkpoint.
        """
        n = self.plan.throughput_records
        if n <= 0:
            return {}
        bursts = []
        for k, bad in enumerate((False, True, False, True)):
            items = self._traffic(images, outputs, n, self.plan.bad_fraction if bad else 0.0, f"tp{k}-")
            ids = {rid for _, rid in items if rid is not None}
            self._send_paced(prod, items, 1e9)
            self._wait_answers(self.plan.settle_s)
            first: dict[str, int] = {}
            for r in list(self.read.results):
                if r.request_id in ids and r.request_id not in first:
                    first[r.request_id] = r.completed_at_ms
            done = sorted(first.values())
            rate = 0.0
            if len(done) >= 10:
                lo, hi = done[len(done) // 10], done[len(done) * 9 // 10]
                rate = (len(done) * 0.8) / max((hi - lo) / 1000, 1e-3)
            bad_bytes = sum(len(item.value) for item, _ in items if isinstance(item, BadRecord))
            valid_bytes = sum(len(item) for item, _ in items if not isinstance(item, BadRecord))
            bursts.append({"with_bad": bad, "bad": len(items) - len(ids), "valid": len(ids), "answered": len(done),
                           "valid_bytes": valid_bytes, "bad_bytes": bad_bytes, "valid_per_s": round(rate, 1)})
            self.say(f"phase 1: burst {k + 1}/4, {len(ids)} valid + {len(items) - len(ids)} bad records: "
                     f"{rate:,.0f} valid requests/s served")
        clean = statistics.mean(b["valid_per_s"] for b in bursts if not b["with_bad"])
        dirty = statistics.mean(b["valid_per_s"] for b in bursts if b["with_bad"])
        return {"bursts": bursts, "clean_per_s": round(clean, 1), "with_bad_per_s": round(dirty, 1),
                "loss": round(1 - dirty / clean, 3) if clean else None}

    def _fit_traffic_to_faults(self) -> None:
        """Lengthen the traffic phase so that every fault strikes while requests flow."""
        plan = self.plan
        faults = plan.kills + plan.python_worker_kills + plan.broker_restarts + plan.back_to_back_kills
        # A fault, its recovery (up to ~30 s on a loaded 2-core machine) and the spacing after it.
        needed_s = faults * (30.0 + plan.min_fault_spacing_s) / 0.75
        if plan.requests / plan.rate < needed_s:
            requests = int(needed_s * plan.rate)
            self.say(f"phase 2: {faults} faults need ~{needed_s:.0f} s of traffic: {requests} requests "
                     f"instead of {plan.requests}")
            self.plan = dataclasses.replace(plan, requests=requests)

    def _mixed_traffic(self, images: np.ndarray, outputs: dict[str, np.ndarray]) -> list[tuple[Any, str | None]]:
        return self._traffic(images, outputs, self.plan.requests, self.plan.bad_fraction, "")

    def _traffic(self, images: np.ndarray, outputs: dict[str, np.ndarray], requests: int, bad_fraction: float,
                 tag: str) -> list[tuple[Any, str | None]]:
        traffic: list[tuple[Any, str | None]] = []
        for i in range(requests):
            while self.rng.random() < bad_fraction:
                traffic.append((self._make_bad(), None))
            index = self.rng.randrange(len(images))
            rid = f"{self.prefix}{tag}{i}"
            request = digits_request(rid, images[index : index + 1])
            self.expected[rid] = Expectation(Status.OK, {k: v[index : index + 1] for k, v in outputs.items()})
            traffic.append((self.codec.encode_request(request), rid))
        return traffic

    def _send_paced(self, prod: Any, items: list[tuple[Any, str | None]], rate: float) -> None:
        topic = self.settings.kafka.requests_topic
        start = time.monotonic()
        for i, (item, rid) in enumerate(items):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if isinstance(item, BadRecord):
                self._expect_bad(item)
                value, key = item.value, item.request_id
            else:
                value, key = item, rid
            try:
                future = prod.send(topic, value=value, key=key.encode() if key else None)
            except Exception as exc:  # noqa: BLE001 - e.g. KafkaTimeoutError while the broker is down
                self._send_failed(key, value, exc)
                continue
            future.add_errback(self._send_failed, key, value)
        try:
            prod.flush(timeout=180)
        except Exception as exc:  # noqa: BLE001 - unacknowledged sends are failed by their errbacks
            self.say(f"producer flush: {type(exc).__name__}: {exc}")

    def _send_failed(self, key: str | None, value: bytes, exc: BaseException) -> None:
        # Never sent: not the job's loss. Counted and left out of the oracle.
        with self._lock:
            self.producer_errors.append(f"{key}: {type(exc).__name__}: {exc}")
            self.dead_expected.pop(digest(value), None)
            if key is not None:
                self.expected.pop(key, None)
                self.dead_if_error.pop(key, None)
                self.withdrawn.add(key)

    # -- restarts and failures -------------------------------------------------------------

    def _monitor_restarts(self) -> None:
        polls = 0
        while not self._stop.is_set():
            # The REST API may be briefly busy: then the next sample tells.
            with contextlib.suppress(Exception):
                self.restart_samples.append((time.monotonic(), num_restarts(self.stack.flink, self.job_id)))
            if polls % 4 == 0:
                self._poll_failures()
            polls += 1
            self._stop.wait(0.5)
        self._poll_failures()

    def _poll_failures(self) -> None:
        with contextlib.suppress(Exception):
            for failure in failures(self.stack.flink, self.job_id):
                self.failures_seen[(failure.at_ms, failure.exception, failure.message)] = failure

    def _outstanding(self) -> int:
        with self._lock:
            missing = len(self.expected.keys() - self.read.answered)
            owed = {key for rid, key in self.dead_if_error.items() if rid in self.read.failed}
            return missing + len((self.dead_expected.keys() | owed) - self.read.dead_keys)

    def _wait_answers(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self._outstanding():
            time.sleep(0.2)

    def _linger(self) -> None:
        # A duplicate would become visible with one of the next checkpoints.
        time.sleep(4 * self.settings.job.checkpoint_interval_ms / 1000)

    # -- faults ----------------------------------------------------------------------------

    def _wait_recovered(self, fault: Fault) -> float:
        """Block until a result arrives after ``fault``; returns its arrival time."""
        deadline = time.monotonic() + self.plan.recover_timeout_s
        while time.monotonic() < deadline:
            later = [t for t in self.read.arrivals[-5000:] if t > fault.at + fault.down_s]
            if later:
                return later[0]
            if not self._outstanding():
                return time.monotonic()  # nothing left to answer: nothing to wait for
            time.sleep(0.2)
        raise TimeoutError(f"no result within {self.plan.recover_timeout_s:.0f} s after the {fault.kind}")

    # -- verdict and report ----------------------------------------------------------------

    def _verdict(self) -> Verdict:
        # A record whose send was reported failed may still have landed: no judgement either way.
        results = [r for r in self.read.results if r.request_id not in self.withdrawn]
        verdict = judge(self.mode, self.expected, results, self.dead_expected, self.read.dead_letters,
                        own_prefix=self.prefix, dead_if_error=self.dead_if_error)
        return verdict

    def _report(self, verdict: Verdict, faults: list[Fault], bad_phase: dict[str, Any], restarts_before: int,
                restarts_end: int, failures: list[int], mixed: tuple[float, int], finish: tuple[float, int],
                started: float) -> dict[str, Any]:
        (mixed_start, mixed_start_ms), (end, end_ms) = mixed, finish
        recoveries = recovery_times(self.read.arrivals, [f.at for f in faults], end)
        fault_rows = []
        attributed = attributed_failures = 0
        bounds = [f.at for f in faults] + [end]
        bounds_ms = [f.at_ms for f in faults] + [end_ms]
        for i, (fault, recovery) in enumerate(zip(faults, recoveries, strict=True)):
            restarts = self._restarts_between(bounds[i], bounds[i + 1])
            failed = sum(1 for t in failures if bounds_ms[i] <= t < bounds_ms[i + 1])
            attributed += restarts
            attributed_failures += failed
            row = {**asdict(fault), "at_s": round(fault.at - mixed_start, 2), "recovery_s": round(recovery, 2),
                   "restarts": restarts, "failures": failed}
            del row["at"], row["at_ms"]
            fault_rows.append(row)
        first_fault = faults[0].at if faults else end
        first_fault_ms = faults[0].at_ms if faults else end_ms
        # Failures whose stack trace blames Python code or an unwritable record, wherever they
        # fell: one after the first fault is not excused by the fault (a kill never raises in Python).
        from_code = sorted((f for f in self.failures_seen.values() if f.from_code), key=lambda f: f.at_ms)
        before_faults = self._restarts_between(mixed_start, first_fault)
        failures_before = sum(1 for t in failures if mixed_start_ms <= t < first_fault_ms)
        kill_recoveries = [r for f, r in zip(faults, recoveries, strict=True) if f.kind == "taskmanager-kill"]
        worker_recoveries = [r for f, r in zip(faults, recoveries, strict=True) if f.kind == "python-worker-kill"]
        return {
            "mode": self.mode,
            "plan": asdict(self.plan),
            "job": {
                "parallelism": self.settings.job.parallelism,
                "python_mode": self.settings.job.python_mode,
                "checkpoint_interval_ms": self.settings.job.checkpoint_interval_ms,
                "restart_delay_ms": self.settings.job.restart_delay_ms,
                "max_payload_bytes": self.settings.job.max_payload_bytes,
                "taskmanagers": self.settings.flink.taskmanagers,
                "slots": self.settings.flink.slots,
            },
            "sent": {
                "valid_requests": self.plan.requests,
                "bad_records": sum(self.bad_kinds.values()),
                "bad_by_kind": dict(self.bad_kinds),
                "producer_errors": len(self.producer_errors),
            },
            "bad_input_phase": bad_phase,
            "faults": fault_rows,
            "recovery_s": _stats(recoveries),
            "kill_recovery_s": _stats(kill_recoveries),
            "worker_kill_recovery_s": _stats(worker_recoveries),
            "baseline_gap_s": round(longest_gap(self.read.arrivals, mixed_start + 2, first_fault), 2),
            "restarts": {
                "mixed_phase_total": restarts_end - restarts_before,
                "attributed_to_faults": attributed,
                "before_first_fault": before_faults,
                "failures_recorded": len(failures),
                "failures_in_fault_windows": attributed_failures,
                "failures_before_first_fault": failures_before,
                "from_bad_input": max(bad_phase["restarts"], bad_phase["failures"])
                + max(before_faults, failures_before)
                + sum(1 for f in from_code if f.at_ms >= first_fault_ms),
                "failures_from_code": len(from_code),
                "code_failures": [{"at_s": round((f.at_ms - mixed_start_ms) / 1000, 1), "exception": f.exception,
                                   "message": f.message} for f in from_code[:20]],
                "failures_seen": len(self.failures_seen),
                "failure_exceptions": dict(Counter(f.exception for f in self.failures_seen.values())),
            },
            "oracle": self._oracle(verdict),
            "undecodable_records_read": self.read.undecodable,
            "duration_s": round(end - started, 1),
        }

    def _oracle(self, verdict: Verdict) -> dict[str, Any]:
        summary = verdict.summary()
        if self.campaign_problems:
            summary["ok"] = False
            summary["problems"] = [*summary["problems"], *self.campaign_problems]
        return summary

    def _restarts_between(self, start: float, stop: float) -> int:
        before = [v for t, v in self.restart_samples if t <= start]
        upto = [v for t, v in self.restart_samples if t <= stop]
        if not upto:
            return 0
        return upto[-1] - (before[-1] if before else upto[0])


def _stats(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "median": None, "max": None}
    return {"count": len(values), "median": round(statistics.median(values), 2), "max": round(max(values), 2)}
