"""``docs/RELIABILITY.md`` from campaigns' JSON reports (see :mod:`aimass.faults.campaign`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from aimass.faults import fuzz, malformed

KNOWN_PROBLEMS = """## Known problems found by these campaigns

- **Fixed: a record just under the broker's size limit killed the TaskManager at every
  replay** (found by the first campaign: its dead letter, original bytes plus envelope,
  exceeded the sinks' `max.request.size`). The requests topic now refuses records above
  `request_record_limit` (payload limit + 1 KiB) and the output limit has room for the dead
  letter of any accepted record. Every campaign now sends such records (every other
  `oversized` record is as large as the requests topic takes; `--no-near-limit` to leave them
  out), and `tests/unit/faults/test_config_faults.py` checks the sizes.
- **Fixed after an independent review of the record path** (not found by a campaign; each now
  has a test that failed before): a 4 MiB flood the size scan could not follow (a union branch
  of -1, a varint past 10 bytes) cost 2-3 s and ~300 MB to refuse; a record under an id already
  accepted (the same bytes after their deadline) put a second, different result on the id; a
  tensor of no data with a huge inner dimension could make ONNX Runtime allocate gigabytes; a
  dead letter was built whole before being cut to its topic's limit.
- **`numRestarts` under-counts** with the adaptive scheduler: it has risen once for several
  recorded job failures. The job's exception history is the better count.
- **Recovery times depend on machine load.** Two campaigns with the same seed measured a
  median of 12 s (quiet machine) and 29 s (load average about 12 on 2 cores, other test
  stacks running); most of it is the TaskManager's start and the job's restore. Where the
  time went in one TaskManager SIGKILL on a quiet machine (2026-12-04, checkpoints on the
  local S3 store, from the JobManager's and TaskManager's logs): the loss noticed 0.2 s after
  the kill (the RPC connection is refused, no heartbeat timeout); the replacement JVM up and
  registered 3.4 s after the kill (restart delay 2 s, overlapped); tasks deploying at 5.1 s;
  all 17 tasks running at 8.9 s (the Python steps' start in thread mode: importing ONNX
  Runtime, loading the versions, restoring RocksDB); results then wait for the next
  checkpoint (1 s) and the backlog. So about 9-11 s quiet, and each stage stretches with the
  load (an independent check measured 16.8 s and 22.5 s at load average 2). Not cut yet: a
  spare TaskManager would remove the JVM start; the Python start is the larger share.
"""

FENCED_PRODUCER = """## The `producer is already fenced ... data loss` error after a recovery

After a TaskManager is killed, the restarted job's Kafka committer often logs one of these for
each sink subtask that had a transaction in flight (it shows up at the TaskManager kill of
`tests/integration/test_exactly_once_kill.py`, for example):

```
ERROR org.apache.flink.connector.kafka.sink.internal.KafkaCommitter [] - Unable to commit transaction
(CommitRequestImpl{state=RECEIVED, numRetries=0, committable=KafkaCommittable{producerId=262, epoch=4,
transactionalId='aimass-b-0-131', producer=null}}) because its producer is already fenced. This means that you
either have a different producer with the same 'transactional.id' (...) or recovery took longer than
'transaction.timeout.ms' (600000ms). In both cases this most likely signals data loss, ...
```

**What it is.** The exactly-once sink commits in two phases. At checkpoint N each writer
flushes its transaction and hands a committable (transactional id, producer id, epoch) to the
committer, which keeps it in checkpoint N's state and commits it once N is complete. A
TaskManager killed after that commit but before checkpoint N+1 completes is restored from N,
whose state still holds the committable, so the restored committer commits it a second time:
`KafkaCommitter.commit` resumes a producer with the saved id and epoch
(`FlinkKafkaInternalProducer.resumeTransaction`) and calls `commitTransaction`. The broker runs
`transaction.version` 2 (the Kafka 4 default, KIP-890), which bumps the producer epoch when a
transaction ends. So the saved epoch is now one behind, the broker answers `PRODUCER_FENCED`, and
`KafkaCommitter.logFencedRequest` logs the message above. It is an ERROR because the job uses the
default transactional-id naming (`reusesTransactionalIds` is false). The request is marked
failed with a known reason: the job does not fail or restart because of it. (Connector
`flink-sql-connector-kafka` 5.0.0-2.2, class
`org.apache.flink.connector.kafka.sink.internal.KafkaCommitter`, read from the jar in
`.state/jars/flink/`.)

**Why it is harmless here.** The transaction it names was committed before the kill, as part of
the completed checkpoint it came from, so its records are already visible to `read_committed`
consumers. On the local stack, a SIGKILL of the TaskManager under load logged the line above for
`aimass-b-0-131` (epoch 4). The broker then reported that transaction as committed, one epoch on:

```
$ java -cp ".state/jars/kafka/*" org.apache.kafka.tools.TransactionsCommand \\
    --bootstrap-server 127.0.0.1:19092 describe --transactional-id aimass-b-0-131   # the stack's broker
TransactionalId  ProducerId  ProducerEpoch  TransactionState  ...
aimass-b-0-131   262         5              CompleteCommit
```

All the traffic sent across the kill was answered, read with `read_committed`. The three
campaigns above kill TaskManagers the same way, several times each, and lose nothing under
their `read_committed` oracles.

**When it would be real.** The connector logs the same message, word for word, when the broker
has *aborted* the transaction: recovery took longer than `transaction.timeout.ms`
(`AIMASS_JOB_TRANSACTION_TIMEOUT_MS`, 10 minutes), or another job writes with the same
`AIMASS_JOB_TRANSACTIONAL_ID_PREFIX`. That is why the error is not filtered out of the logs: a
log4j filter can only match the text, and the text is the same in both cases. To tell which case
you have, describe the transactional id it names, as above. `CompleteCommit` means nothing was
lost. `CompleteAbort` means that transaction's records were lost. (The connector's `POOLING`
naming strategy, `'sink.transaction-naming-strategy'`, makes it log this as a WARN that calls it
expected during recovery. It has not been tried here.)
"""

SECURITY = """## Security

Model names and versions that try to leave the model repository, payload size limits, and the
rule that nothing from the wire is unpickled or evaluated are covered by the bad-input kinds
above and by `tests/unit/test_security.py`; TLS and SASL to Kafka (the job's source and sinks
and the Python clients), tested against a SASL_SSL listener with a generated certificate, and
what does not exist yet, are in [SECURITY.md](SECURITY.md).
"""

_ORDER = {"exactly-once": 0, "at-least-once": 1}


def load_reports(folder: Path) -> list[dict[str, Any]]:
    """Every campaign report (``*.json``) in ``folder``: exactly-once first, thread mode first."""
    reports = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
    return sorted(reports, key=lambda r: (r["job"].get("python_mode", "thread") != "thread",
                                          _ORDER.get(r["mode"], 9)))


def render(reports: list[dict[str, Any]]) -> str:
    """The Markdown page for one or more campaigns' reports (see :func:`load_reports`)."""
    lines = [
        "# Reliability: faults and bad input",
        "",
        "Generated by `python -m aimass.faults` (`make faults`; `make faults-smoke` for the short version)",
        "from the JSON reports kept in `docs/reliability/`. Each campaign starts its own Kafka broker,",
        "Flink cluster and inference job on ports of their own, runs the phases below, judges every",
        "answer against what was sent, and stops the stack. Re-render without running:",
        "`python -m aimass.faults.report`.",
        "",
        "## Summary",
        "",
        "| campaign | valid requests (under faults + bursts) + bad records | faults | lost | doubled | wrong "
        "| restarts from bad input | recovery median / max |",
        "|---|---|---|---|---|---|---|---|",
        *(_summary_row(r) for r in reports),
        "",
        "*Doubled* counts requests with more than one result: it must be 0 in exactly-once mode; in",
        "at-least-once mode duplicates are allowed but must be identical (the *wrong* column counts",
        "conflicting ones).",
        "",
    ]
    for report in reports:
        lines += _run_section(report)
    lines += [
        "## How it is judged",
        "",
        "- Every valid request must get exactly one result (exactly-once) or at least one, all",
        "  identical (at-least-once), with status OK and outputs equal to a direct ONNX Runtime run",
        "  of the newest `digits` version (labels exactly, probabilities within rtol 1e-5).",
        "- Every bad record must get one dead letter with the right reason code, matched by a",
        "  SHA-256 of its bytes; those with a readable request id must also get an error result",
        "  with the right status (`INVALID_INPUT`, `UNKNOWN_MODEL`, `DEADLINE_EXCEEDED`, ...); a result",
        "  for one of the campaign's records that is owed none (its id is unreadable to the job) fails",
        "  the run too.",
        "- A quarter of the bad records are *fuzzed*: a valid request whose body is damaged at random",
        "  from the campaign's seed (a new seed sends records no run has sent before). Its answer is",
        "  not known beforehand, so it is owed exactly one result for its id, of any status, and a",
        "  dead letter of its bytes, with a reason of the same status, exactly when that status is",
        "  not `ok`. `--bad-corpus DIR` sends every file under DIR as one more record: malformed",
        "  inputs from outside the repository. One whose request id the job can read is owed what a",
        "  fuzzed record is owed; one without owes a dead letter of its bytes.",
        "- A fault the job does not recover from within the timeout, or a job not RUNNING at the end,",
        "  fails the run (the report is still written, with the reason).",
        "- `numRestarts` (REST `/jobs/<id>/metrics?get=numRestarts`) is sampled every 0.5 s and",
        "  job failures are read from the exception history (`/jobs/<id>/exceptions`); both are",
        "  attributed to the fault whose window they fall in. Restarts or failures during the",
        "  bad-input-only phase, or before the first fault, count against bad input and must be 0;",
        "  so does a failure anywhere in the campaign, fault windows included, whose stack trace names",
        "  Python code (`PythonException`, a Python traceback) or a record the sink cannot write",
        "  (`RecordTooLargeException`): a killed process or a restarted broker causes neither. The",
        "  exception history keeps only its newest entries, so it is polled every 2 s.",
        "  The REST API refreshes metrics every 2 s here (`metrics.fetcher.update-interval`, 10 s by",
        "  default); each phase waits 12 s before its last reading. `numRestarts` has been seen to rise by",
        "  less than one per TaskManager kill with the adaptive scheduler; the failure count is the",
        "  closer figure.",
        "- A kill is *aimed* at a checkpoint by predicting the next trigger from the latest",
        "  completed one (the REST API caches checkpoint statistics for seconds, longer than a",
        "  checkpoint here lasts, so polling for IN_PROGRESS misses them); whether it *landed* inside",
        "  one is read afterwards from the checkpoint history (triggered before the kill, finished",
        "  or failed after it). A *back-to-back* kill strikes 1-8 s after another fault, while the",
        "  job is still failing over or restoring.",
        "- Recovery time is the longest stretch with no result between a fault and the last result",
        "  before the next fault: it spans failure detection, the restart delay, the TaskManager's",
        "  start (JVM, Python, ONNX sessions), the restore from the last checkpoint and, in",
        "  exactly-once mode, the first checkpoint after it (results become visible when it commits).",
        "- After the last answer the reader lingers four checkpoint intervals, so that a late",
        "  duplicate would be seen.",
        "",
        KNOWN_PROBLEMS,
        FENCED_PRODUCER,
        SECURITY,
    ]
    return "\n".join(lines)


def _title(report: dict[str, Any]) -> str:
    return f"{report['mode']}, {report['job'].get('python_mode', 'thread')} mode"


def _summary_row(report: dict[str, Any]) -> str:
    sent, oracle, rec = report["sent"], report["oracle"], report["recovery_s"]
    counts: dict[str, int] = {}
    for fault in report["faults"]:
        kind = "back-to-back kill" if fault.get("back_to_back") else fault["kind"].replace("-", " ")
        counts[kind] = counts.get(kind, 0) + 1
    faults = ", ".join(f"{n} {kind}{'s' if n > 1 else ''}" for kind, n in counts.items()) or "none"
    wrong = oracle["mismatched"] + oracle.get("conflicting_duplicates", 0)
    bursts = sum(b["valid"] for b in (report["bad_input_phase"].get("throughput") or {}).get("bursts", []))
    return (f"| {_title(report)} | ({sent['valid_requests']} + {bursts}) + {sent['bad_records']} | {faults} | "
            f"**{oracle['lost']}** | **{oracle['duplicated_requests']}** | **{wrong}** | "
            f"**{report['restarts']['from_bad_input']}** | {_s(rec['median'])} / {_s(rec['max'])} |")


_DESCRIPTIONS = {**malformed.DESCRIPTIONS, **fuzz.DESCRIPTIONS}


def _verdict(oracle: dict[str, Any]) -> str:
    """One line: what the oracle found, in the words of the delivery mode's promise."""
    if not oracle["ok"]:
        return "**FAILED**"
    identical = oracle.get("identical_duplicates", 0)
    if identical:  # allowed in at-least-once mode only (the oracle fails exactly-once on any)
        return (f"**nothing lost, nothing wrong**; {identical} requests answered more than once, every copy "
                "identical (allowed in at-least-once mode)")
    return "**nothing lost, nothing doubled, nothing wrong**"


def _run_section(report: dict[str, Any]) -> list[str]:
    plan, sent, oracle, restarts = report["plan"], report["sent"], report["oracle"], report["restarts"]
    job, machine, bad_phase = report["job"], report.get("machine", {}), report["bad_input_phase"]
    kills = [f for f in report["faults"] if f["kind"] == "taskmanager-kill"]
    back_to_back = [f for f in kills if f.get("back_to_back")]
    workers = [f for f in report["faults"] if f["kind"] == "python-worker-kill"]
    brokers = [f for f in report["faults"] if f["kind"] == "broker-restart"]
    landed = sum(1 for f in kills if f["during_checkpoint"])
    aimed = round(plan["checkpoint_kill_share"] * (len(kills) - len(back_to_back)))
    rec, kill_rec = report["recovery_s"], report["kill_recovery_s"]
    worker_rec = report.get("worker_kill_recovery_s") or {"median": None, "max": None}
    verdict = _verdict(oracle)
    lines = [
        f"## Campaign: {_title(report)}",
        "",
        f"- Command: `{report.get('command', 'python -m aimass.faults')}`",
        f"- Finished: {report.get('finished_at', '?')}, {report['duration_s']:.0f} s in all",
        f"- Machine: {machine.get('cpus', '?')} CPUs ({machine.get('processor', '?')}), "
        f"{machine.get('memory_gib', '?')} GiB, {machine.get('platform', '?')}, Python {machine.get('python', '?')}; "
        f"load average at the end (1, 5, 15 min): {machine.get('load_average', 'not recorded')}",
        f"- Job: **{report['mode']}**, PyFlink {job.get('python_mode', 'thread')} mode, parallelism "
        f"{job['parallelism']} on {job['taskmanagers']} TaskManager × {job['slots']} slots, checkpoint every "
        f"{job['checkpoint_interval_ms']} ms, restart delay {job['restart_delay_ms']} ms, `max_payload_bytes` "
        f"{job['max_payload_bytes']}",
        f"- Results and dead letters read with "
        f"`{'read_committed' if report['mode'] == 'exactly-once' else 'read_uncommitted'}`",
        f"- Verdict: {verdict}",
        "",
        "### What was injected",
        "",
        "| phase | what | how much |",
        "|---|---|---|",
        f"| 1. bad input only | bad records of every kind, no fault | {bad_phase['records']} records |",
        f"| 2. traffic under faults | valid `digits` requests, paced | {sent['valid_requests']} at "
        f"{plan['rate']:.0f}/s |",
        f"| 2. | bad records mixed in (~{plan['bad_fraction']:.0%}) | "
        f"{sent['bad_records'] - bad_phase['records']} records |",
        f"| 2. | TaskManager SIGKILL, started again after 0–{plan['max_taskmanager_down_s']:.0f} s | "
        f"{len(kills)} ({aimed} aimed at a checkpoint, {landed} landed inside one per the checkpoint history; "
        f"{len(back_to_back)} back-to-back, while the job was still recovering) |",
        f"| 2. | Python worker SIGKILL (process mode; the TaskManager lives on) | {len(workers)} |",
        f"| 2. | broker stop (SIGTERM) and start after {plan['broker_down_s']:.0f} s | {len(brokers)} |",
        f"| | seed | {plan['seed']} |",
        "",
        "Bad records sent, by kind (both phases):",
        "",
        "| kind | what | sent |",
        "|---|---|---|",
        *(f"| `{kind}` | {_DESCRIPTIONS.get(kind, '')} | {n} |" for kind, n in sent["bad_by_kind"].items()),
        "",
        *_throughput_lines(bad_phase.get("throughput") or {}, plan),
        "### What came out",
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
        f"failures{_code_failures(restarts)}) |",
        f"| `numRestarts` increase during phase 2 / within the fault windows | {restarts['mixed_phase_total']} / "
        f"{restarts['attributed_to_faults']} |",
        f"| job failures recorded during phase 2 / within the fault windows | "
        f"{restarts.get('failures_recorded', 'n/a')} / {restarts.get('failures_in_fault_windows', 'n/a')} |",
        *([f"| root exceptions of the failures (whole campaign) | "
           f"{', '.join(f'`{name}` × {n}' for name, n in restarts['failure_exceptions'].items()) or 'none'} |"]
          if "failure_exceptions" in restarts else []),
        f"| recovery time after a fault, median / max | {_s(rec['median'])} / {_s(rec['max'])} |",
        f"| recovery time after a TaskManager kill, median / max | {_s(kill_rec['median'])} / "
        f"{_s(kill_rec['max'])} |",
    ]
    if workers:
        lines.append(f"| recovery time after a Python worker kill, median / max | {_s(worker_rec['median'])} / "
                     f"{_s(worker_rec['max'])} |")
    lines += [
        f"| longest gap between results before the first fault (baseline) | {_s(report['baseline_gap_s'])} |",
        "",
        "| # | fault | at | during a checkpoint | back-to-back | down | `numRestarts` + | failures | recovery |",
        "|---|---|---|---|---|---|---|---|---|",
        *(f"| {i + 1} | {f['kind']} | +{f['at_s']:.1f} s | {'yes' if f['during_checkpoint'] else 'no'} | "
          f"{'yes' if f.get('back_to_back') else 'no'} | {f['down_s']:.1f} s | {f['restarts']} | "
          f"{f.get('failures', 'n/a')} | {f['recovery_s']:.1f} s |"
          for i, f in enumerate(report["faults"])),
        "",
    ]
    if oracle["problems"]:
        lines += ["Problems found:", "", *(f"- {p}" for p in oracle["problems"]), ""]
    return lines


def _code_failures(restarts: dict[str, Any]) -> str:
    """The part of the restarts row on failures blamed on Python code (older reports lack it)."""
    if "failures_from_code" not in restarts:
        return ""
    text = (f"; failures anywhere in the campaign whose stack trace names Python code or an unwritable "
            f"record: {restarts['failures_from_code']} of {restarts.get('failures_seen', '?')} recorded")
    for failure in restarts.get("code_failures", [])[:3]:
        message = failure["message"][:160].replace("|", "\\|")  # inside a table cell
        text += f"; at +{failure['at_s']} s `{failure['exception']}`: {message}"
    return text


def _throughput_lines(throughput: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    if not throughput:
        return []
    return [
        "Throughput lost to bad input (phase 1, no fault): four bursts of valid requests sent as fast",
        f"as the producer goes, alternately clean and with ~{plan['bad_fraction']:.0%} bad records; the",
        "service rate is taken from the results' `completed_at_ms` (10th to 90th percentile).",
        "",
        "| burst | valid requests | bad records | MB valid / bad | valid requests served per second |",
        "|---|---|---|---|---|",
        *(f"| {i + 1} | {b['valid']} | {b['bad']} | {_mb(b.get('valid_bytes'))} / {_mb(b.get('bad_bytes'))} | "
          f"{b['valid_per_s']:,.0f} |" for i, b in enumerate(throughput["bursts"])),
        "",
        f"Mean: {throughput['clean_per_s']:,.0f}/s clean, {throughput['with_bad_per_s']:,.0f}/s with bad records: "
        f"{_loss(throughput['loss'])}. Compare the two clean bursts for the noise on this",
        "shared machine. The bad records are ~1 % by count but not by bytes: every other `oversized`",
        "record is as large as the requests topic takes and travels on as a dead letter, so the loss",
        "follows the bytes moved more than the records rejected.",
        "",
    ]


def _loss(loss: float | None) -> str:
    """The throughput loss in words: a negative one is no loss, only noise."""
    if loss is None:
        return "**loss not measured**"
    if loss < 0:
        return f"**no loss measured** (the bursts with bad records were {-loss:.1%} faster: noise, and warm-up)"
    return f"**{loss:.1%} throughput loss**"


def _mb(value: int | None) -> str:
    return "?" if value is None else f"{value / 1e6:.1f}"


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


def main(argv: list[str] | None = None) -> int:
    """``python -m aimass.faults.report``: render the page again from the kept JSON reports."""
    from aimass.settings import PROJECT_ROOT

    parser = argparse.ArgumentParser(prog="python -m aimass.faults.report", description=main.__doc__)
    parser.add_argument("--from", dest="source", type=Path, default=PROJECT_ROOT / "docs" / "reliability",
                        help="folder of campaign reports (*.json)")
    parser.add_argument("--doc", type=Path, default=PROJECT_ROOT / "docs" / "RELIABILITY.md")
    args = parser.parse_args(argv)
    reports = load_reports(args.source)
    if not reports:
        raise SystemExit(f"no campaign reports (*.json) in {args.source}: run `make faults` first")
    args.doc.write_text(render(reports))
    print(f"wrote {args.doc} from {len(reports)} report(s) in {args.source}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
