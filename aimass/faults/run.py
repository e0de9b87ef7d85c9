"""``python -m aimass.faults``: a fault campaign on a stack of its own, then the report.

Starts Kafka, Flink and the inference job on ports and a state folder of their own (Kafka
49092/49093, REST 48081, RPC 46123, blob 46124, TaskManagers 46200-46299, state
``.state/faults``), so that neither a demo stack nor a test session is touched; runs a
:class:`~aimass.faults.campaign.Campaign`; writes the JSON report and ``docs/RELIABILITY.md``;
and stops the stack at the end, on Ctrl-C and on SIGTERM too.

    python -m aimass.faults                 # long: 6 kills, a broker restart, ~20k requests
    python -m aimass.faults --smoke         # 2 kills and a broker restart over ~2,000 requests
    python -m aimass.faults --mode at-least-once
    python -m aimass.faults --python-mode process   # also kills the Python worker processes

A long run keeps its JSON report in ``docs/reliability/<mode>[-process].json`` and renders
``docs/RELIABILITY.md`` from every report kept there, so that the exactly-once, at-least-once
and process-mode campaigns stand side by side.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from aimass.faults.campaign import Campaign
from aimass.faults.plan import SMOKE, Plan, largest_value
from aimass.faults.report import load_reports, render
from aimass.settings import PROJECT_ROOT, Settings
from aimass.stack.isolated import FAULTS_PORTS, isolated_env

#: Settings of the campaign's own stack (see the module docstring for why these ports).
FAULTS_ENV = isolated_env("faults", FAULTS_PORTS, extra={
    "AIMASS_FLINK_SLOTS": "2",
    "AIMASS_JOB_PARALLELISM": "2",
    "AIMASS_JOB_NAME": "aimass-inference-faults",
    "AIMASS_JOB_TRANSACTIONAL_ID_PREFIX": "aimass-faults",
    "AIMASS_JOB_CONSUMER_GROUP": "aimass-faults",
    # Oversized records of a few hundred KiB, not 4 MiB: the same code path, less to move.
    "AIMASS_JOB_MAX_PAYLOAD_BYTES": str(256 * 1024),
})
DEFAULT_OUT = PROJECT_ROOT / ".state" / "faults-out"
DEFAULT_DOC = PROJECT_ROOT / "docs" / "RELIABILITY.md"
REPORTS_DIR = PROJECT_ROOT / "docs" / "reliability"
"""Where long runs keep their JSON reports; ``docs/RELIABILITY.md`` is rendered from all of them."""


class _Terminated(Exception):
    """SIGTERM, turned into an exception so that the stack is stopped on the way out."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (each overrides the long or ``--smoke`` plan)."""
    parser = argparse.ArgumentParser(prog="python -m aimass.faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="the short version (~2,000 requests, 2 kills)")
    parser.add_argument("--mode", choices=["exactly-once", "at-least-once"], default="exactly-once",
                        help="delivery mode of the job (default exactly-once)")
    parser.add_argument("--python-mode", choices=["thread", "process"], default="thread",
                        help="PyFlink execution mode; process mode also kills the Python worker (default thread)")
    for name, kind, text in (
        ("requests", int, "valid requests of the traffic phase"),
        ("rate", float, "records per second"),
        ("bad-fraction", float, "share of bad records in the traffic phase"),
        ("bad-only", int, "bad records of the bad-input-only phase"),
        ("kills", int, "TaskManager SIGKILLs"),
        ("python-worker-kills", int, "Python worker SIGKILLs (process mode; default 2 there)"),
        ("back-to-back-kills", int, "extra kills while the job still recovers from a fault"),
        ("broker-restarts", int, "broker stop/start cycles"),
        ("throughput-records", int, "valid requests per throughput burst (0 skips the bursts)"),
        ("fuzz-share", float, "share of bad records that are seeded mutations of valid requests (default 0.25)"),
        ("seed", int, "seed of every random choice"),
    ):
        parser.add_argument(f"--{name}", type=kind, default=None, help=text)
    parser.add_argument("--out", type=Path, default=None, help=f"JSON report folder (default {DEFAULT_OUT}/<name>)")
    parser.add_argument("--doc", type=Path, default=None,
                        help=f"Markdown report (default {DEFAULT_DOC} for the long run, next to the JSON for --smoke)")
    parser.add_argument("--no-near-limit", action="store_true",
                        help="send oversized records just over max_payload_bytes only, none as large as the "
                             "requests topic takes")
    parser.add_argument("--bad-corpus", type=Path, default=None, metavar="DIR",
                        help="also send every file under DIR as one record in phase 1: malformed inputs of your "
                             "own (each owes a dead letter; one with a readable id, one answer for it)")
    parser.add_argument("--keep", action="store_true", help="leave the stack running at the end (to look at it)")
    return parser.parse_args(argv)


def plan_from(args: argparse.Namespace) -> Plan:
    """The plan: ``SMOKE`` or the long default, with the options given on the command line."""
    plan = SMOKE if args.smoke else Plan()
    changes = {field: getattr(args, field) for field in
               ("requests", "rate", "bad_fraction", "bad_only", "kills", "python_worker_kills",
                "back_to_back_kills", "broker_restarts", "throughput_records", "fuzz_share", "seed")
               if getattr(args, field) is not None}
    if args.python_mode == "process" and args.python_worker_kills is None:
        changes["python_worker_kills"] = 2
    if args.python_mode == "thread" and changes.get("python_worker_kills"):
        raise SystemExit("--python-worker-kills needs --python-mode process: in thread mode Python runs inside "
                         "the TaskManager (kill the TaskManager with --kills instead)")
    if args.no_near_limit:
        changes["near_limit_oversized"] = False
    if args.bad_corpus is not None:
        changes["corpus"] = str(args.bad_corpus.resolve())
    return dataclasses.replace(plan, **changes)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    memory = None
    try:
        with open("/proc/meminfo") as f:
            memory = round(int(f.readline().split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpus": os.cpu_count(),
        "memory_gib": memory,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        # Other stacks on the same cores stretch recovery times: say how busy the machine was.
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    """Run a campaign on a stack of its own; 0 when the oracle finds nothing wrong."""
    args = parse_args(argv)
    plan = plan_from(args)
    settings = Settings.load(env={**FAULTS_ENV, "AIMASS_JOB_DELIVERY": args.mode,
                                  "AIMASS_JOB_PYTHON_MODE": args.python_mode})
    variant = args.mode + ("" if args.python_mode == "thread" else f"-{args.python_mode}")
    name = ("smoke-" if args.smoke else "long-") + variant
    out = args.out or DEFAULT_OUT / name
    doc = args.doc or (out / "RELIABILITY.md" if args.smoke else DEFAULT_DOC)
    keep_in = None if (args.smoke or args.doc) else REPORTS_DIR
    command = ("python -m aimass.faults " + shlex.join(argv if argv is not None else sys.argv[1:])).strip()

    from aimass.stack import jobs
    from aimass.stack.local import LocalStack
    from aimass.tools.demo import build_demo_models

    def say(message: str) -> None:
        print(f"[faults {time.strftime('%H:%M:%S')}] {message}", flush=True)

    if plan.corpus:  # a bad folder is said now, not after the stack has started
        from aimass.faults.fuzz import load_corpus

        try:
            from aimass.contract.codec import Codec

            corpus = list(load_corpus(Path(plan.corpus), largest_value(settings), Codec(settings.paths.schemas_dir),
                                      settings.job.max_payload_bytes))
            with_id = sum(1 for r in corpus if r.request_id is not None)
            say(f"--bad-corpus: {len(corpus)} distinct records in {plan.corpus}, {with_id} with a request id "
                "the job can read")
        except ValueError as exc:
            raise SystemExit(f"error: {exc}") from None
    build_demo_models(settings.paths.models_dir)
    stack = LocalStack(settings, say=lambda m: say(f"stack: {m}"))
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        stack.down(purge=True)  # a fresh broker and cluster: no state of an earlier campaign
        stack.up()
        job_id = jobs.submit(settings)
        say(f"job {job_id} running ({args.mode}); plan: {plan}")
        report = Campaign(settings, stack, job_id, plan, say).run()
    except (KeyboardInterrupt, _Terminated):
        say("interrupted: stopping the stack")
        return 130
    finally:
        if not args.keep:
            stopped = stack.down()
            say(f"stopped {', '.join(stopped) or 'nothing'}")
        signal.signal(signal.SIGTERM, previous)
    report["command"] = command
    report["machine"] = machine()
    report["finished_at"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    out.mkdir(parents=True, exist_ok=True)
    (out / "faults.json").write_text(json.dumps(report, indent=2) + "\n")
    reports = [report]
    if keep_in is not None:
        keep_in.mkdir(parents=True, exist_ok=True)
        (keep_in / f"{variant}.json").write_text(json.dumps(report, indent=2) + "\n")
        reports = load_reports(keep_in)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(render(reports))
    oracle = report["oracle"]
    say(f"oracle: {'OK' if oracle['ok'] else 'FAILED'}; lost {oracle['lost']}, duplicates "
        f"{oracle['duplicated_requests']}, wrong {oracle['mismatched']}; restarts from bad input "
        f"{report['restarts']['from_bad_input']}; recovery {report['recovery_s']}")
    for problem in oracle["problems"]:
        say(f"  {problem}")
    say(f"wrote {out / 'faults.json'} and {doc}")
    return 0 if oracle["ok"] and report["restarts"]["from_bad_input"] == 0 else 1
