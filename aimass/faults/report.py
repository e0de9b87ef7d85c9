"""``docs/RELIABILITY.md`` from a campaign's JSON report (see :mod:`aimass.faults.campaign`)."""

from __future__ import annotations

from typing import Any

_KIND_TEXT = {
    "garbage": "random bytes, not Avro single-object encoding",
    "truncated": "a valid request cut short after its request id",
    "wrong_schema": "a result record, or a request with an unknown schema fingerprint",
    "wrong_shape": "`digits` with 0, 1, 63, 65 or 128 columns instead of 64",
    "wrong_dtype": "`digits` pixels as float64, int64, int32 or uint8 instead of float32",
    "unknown_model": "a model or a version that does not exist",
    "path_traversal": "model or version `..`, `../digits`, `../../etc`, `/etc/passwd`",
    "oversized": "larger than `max_payload_bytes` (every other one as large as the broker takes)",
    "expired_deadline": "`deadline_ms` in the past",
}

KNOWN_PROBLEMS = """## Known problems found by these campaigns

- **Fixed since the first campaign: a record just under the broker's size limit killed the
  TaskManager at every replay** (its dead letter, original bytes plus envelope, exceeded the
  sinks' `max.request.size`). The requests topic now refuses records above
  `request_record_limit` (payload limit + 1 KiB) and the output limit has room for the dead
  letter of any accepted record; `python -m aimass.faults --smoke --probe-broker-limit` sends
  such records, and `tests/unit/test_config_faults.py` checks the sizes.
- **`numRestarts` under-counts** with the adaptive scheduler: it rose once for five recorded
  job failures in the run above. The job's exception history is the better count.
- **Recovery times depend on machine load.** Two campaigns with the same seed measured a
  median of 12 s (quiet machine) and 29 s (load average about 12 on 2 cores, other test
  stacks running); most of it is the TaskManager's start and the job's restore.
"""

SECURITY = """## Security: what exists, what does not yet

What exists, each with a test in `tests/unit/test_security.py`:

- **Model names and versions cannot leave the model repository.** The decoder refuses a name
  or version that is not one path component (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}`: no `/`, no
  leading dot, so no `..`); the repository refuses again any name, version or symlinked
  directory whose resolved path leads out of it (`aimass/models.py`). The campaign above sends
  such requests: they get an `INVALID_INPUT` result and a dead letter. Not covered: a
  `model.onnx` or `model.json` that is itself a symlink out of the repository is followed
  (whoever can write the repository can place one; pinned by a strict xfail).
- **Nothing from the wire is unpickled or evaluated.** Requests are Avro single-object
  encoded and read by `fastavro` against the schemas in `schemas/`; `aimass/codec.py`, the
  engine and `udfs/` import neither `pickle` nor `marshal` and call no `eval`/`exec`. (The
  keyed operator keeps the *original Avro bytes* in Flink state; PyFlink pickles that tuple
  into its own checkpoints, which are not wire data.)
- **Size limits.** A request longer than `job.max_payload_bytes` (default 4 MiB) is refused
  as `OVERSIZED` before it is parsed; longer than 64 KiB, it is first scanned for more than
  1024 inputs or 32 dimensions, so a small record cannot expand into millions of objects.
  The broker's `message.max.bytes` and the job's producers are sized from the same setting.
- **The gRPC gateway** has TLS and a bearer token (issue 5; off by default, for localhost).

What does not exist yet:

- **SASL / TLS to Kafka: the job only, untested.** `AIMASS_KAFKA_CLIENT_PROPERTIES`
  (`key=value;...`, e.g. `security.protocol=SASL_SSL;sasl.mechanism=PLAIN;sasl.jaas.config=...`)
  is passed through to the job's Kafka source and sinks as `properties.<key>` (checked in
  `tests/unit/test_config_faults.py`), but no run against a TLS or SASL broker was made; the
  local broker, the client library and the gateway speak PLAINTEXT. Until tested, run Kafka
  on a trusted network only.
- No authorization per model (any producer to the requests topic may call any model), no
  rate limit per producer, no signature or checksum on model files beyond their metadata
  being validated against the ONNX graph.
"""


def render(report: dict[str, Any]) -> str:
    """The Markdown page for one campaign's report."""
    plan, sent, oracle, restarts = report["plan"], report["sent"], report["oracle"], report["restarts"]
    job, machine, bad_phase = report["job"], report.get("machine", {}), report["bad_input_phase"]
    kills = [f for f in report["faults"] if f["kind"] == "taskmanager-kill"]
    brokers = [f for f in report["faults"] if f["kind"] == "broker-restart"]
    aimed = sum(1 for f in kills if f["during_checkpoint"])
    rec, kill_rec = report["recovery_s"], report["kill_recovery_s"]
    verdict = "**nothing lost, nothing doubled, nothing wrong**" if oracle["ok"] else "**FAILED**"
    lines = [
        "# Reliability: faults and bad input",
        "",
        "Generated by `python -m aimass.faults` (`make faults`; `make faults-smoke` for the short version)",
        "from its JSON report. The campaign starts its own Kafka broker, Flink cluster and inference job",
        "on ports of their own, runs the phases below, judges every answer against what was sent, and",
        "stops the stack.",
        "",
        "## This run",
        "",
        f"- Command: `{report.get('command', 'python -m aimass.faults')}`",
        f"- Finished: {report.get('finished_at', '?')}, {report['duration_s']:.0f} s in all",
        f"- Machine: {machine.get('cpus', '?')} CPUs ({machine.get('processor', '?')}), "
        f"{machine.get('memory_gib', '?')} GiB, {machine.get('platform', '?')}, Python {machine.get('python', '?')}; "
        f"load average at the end (1, 5, 15 min): {machine.get('load_average', 'not recorded')}",
        f"- Job: **{report['mode']}**, parallelism {job['parallelism']} on {job['taskmanagers']} TaskManager × "
        f"{job['slots']} slots, checkpoint every {job['checkpoint_interval_ms']} ms, restart delay "
        f"{job['restart_delay_ms']} ms, `max_payload_bytes` {job['max_payload_bytes']}",
        f"- Results and dead letters read with "
        f"`{'read_committed' if report['mode'] == 'exactly-once' else 'read_uncommitted'}`",
        f"- Verdict: {verdict}",
        "",
        "## What was injected",
        "",
        "| phase | what | how much |",
        "|---|---|---|",
        f"| 1. bad input only | bad records of every kind, no fault | {bad_phase['records']} records |",
        f"| 2. traffic under faults | valid `digits` requests, paced | {sent['valid_requests']} at "
        f"{plan['rate']:.0f}/s |",
        f"| 2. | bad records mixed in (~{plan['bad_fraction']:.0%}) | "
        f"{sent['bad_records'] - bad_phase['records']} records |",
        f"| 2. | TaskManager SIGKILL, started again after 0–{plan['max_taskmanager_down_s']:.0f} s | "
        f"{len(kills)} ({round(plan['checkpoint_kill_share'] * len(kills))} aimed at a checkpoint, {aimed} landed "
        "inside one per the checkpoint history) |",
        f"| 2. | broker stop (SIGTERM) and start after {plan['broker_down_s']:.0f} s | {len(brokers)} |",
        f"| | seed | {plan['seed']} |",
        "",
        "Bad records sent, by kind (both phases):",
        "",
        "| kind | what | sent |",
        "|---|---|---|",
        *(f"| `{kind}` | {_KIND_TEXT.get(kind, '')} | {n} |" for kind, n in sent["bad_by_kind"].items()),
        "",
        "## What came out",
        "",
        "| measure | value |",
        "|---|---|",
        f"| answers expected (valid requests + bad records with a readable id) | {oracle['expected']} |",
        f"| answered | {oracle['answered']} |",
        f"| **lost** (no result, or no dead letter for an id-less bad record) | **{oracle['lost']}** |",
        f"| **requests with more than one result** | **{oracle['duplicated_requests']}** "
        f"({oracle['identical_duplicates']} identical, {oracle['conflicting_duplicates']} conflicting) |",
        f"| wrong results (status, or outputs vs direct ONNX Runtime) | {oracle['mismatched']} |",
        f"| dead letters expected / missing / duplicated / wrong reason | {oracle['dead_letters_expected']} / "
        f"{oracle['dead_letters_missing']} / {oracle['dead_letters_duplicated']} / "
        f"{oracle['dead_letters_wrong_reason']} |",
        f"| records the producer could not send (left out of the oracle) | {sent['producer_errors']} |",
        f"| **job restarts caused by bad input** | **{restarts['from_bad_input']}** (phase 1: "
        f"{bad_phase['restarts']} restarts, {bad_phase.get('failures', 0)} failures recorded; phase 2 before the "
        f"first fault: {restarts['before_first_fault']} restarts, {restarts.get('failures_before_first_fault', 0)} "
        f"failures) |",
        f"| `numRestarts` increase during phase 2 / within the fault windows | {restarts['mixed_phase_total']} / "
        f"{restarts['attributed_to_faults']} |",
        f"| job failures recorded during phase 2 / within the fault windows | "
        f"{restarts.get('failures_recorded', 'n/a')} / {restarts.get('failures_in_fault_windows', 'n/a')} |",
        f"| recovery time after a fault, median / max | {_s(rec['median'])} / {_s(rec['max'])} |",
        f"| recovery time after a TaskManager kill, median / max | {_s(kill_rec['median'])} / "
        f"{_s(kill_rec['max'])} |",
        f"| longest gap between results before the first fault (baseline) | {_s(report['baseline_gap_s'])} |",
        "",
        "Recovery time is the longest stretch with no result between a fault and the last result",
        "before the next fault: it spans failure detection, the restart delay, the TaskManager's",
        "start (JVM, Python, ONNX sessions), the restore from the last checkpoint and, in",
        "exactly-once mode, the first checkpoint after it (results become visible when it commits).",
        "",
        "| # | fault | at | during a checkpoint | down | `numRestarts` + | failures | recovery |",
        "|---|---|---|---|---|---|---|---|",
        *(f"| {i + 1} | {f['kind']} | +{f['at_s']:.1f} s | {'yes' if f['during_checkpoint'] else 'no'} | "
          f"{f['down_s']:.1f} s | {f['restarts']} | {f.get('failures', 'n/a')} | {f['recovery_s']:.1f} s |"
          for i, f in enumerate(report["faults"])),
        "",
    ]
    if oracle["problems"]:
        lines += ["Problems found:", "", *(f"- {p}" for p in oracle["problems"]), ""]
    lines += [
        "## How it is judged",
        "",
        "- Every valid request must get exactly one result (exactly-once) or at least one, all",
        "  identical (at-least-once), with status OK and outputs equal to a direct ONNX Runtime run",
        "  of the newest `digits` version (labels exactly, probabilities within rtol 1e-5).",
        "- Every bad record must get one dead letter with the right reason code, matched by a",
        "  SHA-256 of its bytes; those with a readable request id must also get an error result",
        "  with the right status (`INVALID_INPUT`, `UNKNOWN_MODEL`, `DEADLINE_EXCEEDED`).",
        "- `numRestarts` (REST `/jobs/<id>/metrics?get=numRestarts`) is sampled every 0.5 s and",
        "  job failures are read from the exception history (`/jobs/<id>/exceptions`); both are",
        "  attributed to the fault whose window they fall in. Restarts or failures during the",
        "  bad-input-only phase, or before the first fault, count against bad input and must be 0.",
        "  The REST API refreshes metrics only every 10 s, so each phase waits that long before its",
        "  last reading. `numRestarts` has been seen to rise by less than one per TaskManager kill",
        "  with the adaptive scheduler; the failure count is the closer figure.",
        "- A kill is *aimed* at a checkpoint by predicting the next trigger from the latest",
        "  completed one (the REST API caches checkpoint statistics for seconds, longer than a",
        "  checkpoint here lasts, so polling for IN_PROGRESS misses them); whether it *landed* inside",
        "  one is read afterwards from the checkpoint history (triggered before the kill, finished",
        "  or failed after it).",
        "- After the last answer the reader lingers four checkpoint intervals, so that a late",
        "  duplicate would be seen.",
        "",
        KNOWN_PROBLEMS,
        SECURITY,
    ]
    return "\n".join(lines)


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} s"
