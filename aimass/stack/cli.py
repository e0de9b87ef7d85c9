"""``aimass up``, ``down``, ``status``, ``logs``, ``submit``, ``cancel``, ``rescale``,
``taskmanagers``: the local stack and the inference job on it."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

from aimass.operators import BATCH_INFER
from aimass.settings import Settings
from aimass.stack.procs import tail
from aimass.stack.rescale import Vertex


def _say(message: str) -> None:
    print(f"[aimass] {message}", flush=True)


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    from aimass.stack.local import LocalStack

    LocalStack(settings, _say).up()
    _print_next_steps(settings)
    return 0


def cmd_down(settings: Settings, args: argparse.Namespace) -> int:
    from aimass.stack.local import LocalStack

    stopped = LocalStack(settings, _say).down(purge=args.purge)
    _say(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    if args.purge:
        _say(f"removed data, logs and checkpoints under {settings.paths.state_dir}")
    return 0


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    from aimass.stack.flink import FlinkCluster
    from aimass.stack.local import LocalStack

    stack = LocalStack(settings, _say)
    rows = stack.status()
    print(f"{'component':<16}{'state':<10}{'pid':<9}{'address':<28}log")
    for row in rows:
        state = "running" if row.pid else "stopped"
        print(f"{row.name:<16}{state:<10}{row.pid or '-'!s:<9}{row.address:<28}{row.log_file}")
    running = {row.name for row in rows if row.pid}
    metrics = stack.flink.metrics_urls()
    if metrics:
        print("\nPrometheus: " + ", ".join(f"{name} {url}" for name, url in metrics.items()))
    print(f"\nCheckpoints and savepoints: {settings.checkpoint_uri}, {settings.savepoint_uri}")
    if "jobmanager" in running:
        print(f"\nFlink web UI: {settings.flink.rest_url}")
        cluster = FlinkCluster(settings)
        try:
            for job in cluster.jobs()[:5]:
                print(f"  job {job['jid']}  {job['state']:<10} {job['name']}")
                if job["state"] in ("RUNNING", "RESTARTING"):
                    stats = cluster.rest(f"/jobs/{job['jid']}/checkpoints")
                    print(f"      {checkpoint_line(stats)}")
        except OSError as exc:
            print(f"  (REST API not answering: {exc})")
    if "kafka" in running:
        print(f"\nKafka {settings.kafka.bootstrap}; consumer group {settings.job.consumer_group}:")
        try:
            for topic, end, lag in stack.kafka.topic_lag(settings.job.consumer_group):
                lag_text = "-" if lag is None else str(lag)
                print(f"  {topic:<28} records {end:<10} lag {lag_text}")
        except Exception as exc:  # noqa: BLE001 - status must print what it can
            print(f"  (broker not answering: {exc})")
    return 0


def checkpoint_line(stats: dict[str, Any]) -> str:
    """A job's checkpoint counts from ``/jobs/<id>/checkpoints``, failures first when there are."""
    counts = stats.get("counts", {})
    failed = int(counts.get("failed", 0))
    line = (f"checkpoints: {counts.get('completed', 0)} completed, {failed} failed, "
            f"{counts.get('in_progress', 0)} in progress")
    latest = stats.get("latest", {}) or {}
    last_failed = latest.get("failed") or {}
    completed = latest.get("completed") or {}
    if failed and last_failed.get("failure_timestamp", 0) > completed.get("latest_ack_timestamp", 0):
        cause = str(last_failed.get("failure_message", "")).splitlines()[0][:160] if last_failed.get(
            "failure_message") else "no cause given"
        line += f"; FAILING since the last completed one ({cause}): the job serves on, results wait for a checkpoint"
    return line


def cmd_logs(settings: Settings, args: argparse.Namespace) -> int:
    from aimass.stack.local import LocalStack

    files = [p for p in LocalStack(settings, _say).log_files(args.component) if p.exists()]
    if not files:
        _say(f"no logs for {args.component} under {settings.paths.state_dir / 'logs'}")
        return 1
    for path in files:
        print(f"==> {path} <==")
        print(tail(path, args.lines))
    if args.follow:
        import subprocess

        return subprocess.call(["tail", "-F", *map(str, files)])
    return 0


def cmd_submit(settings: Settings, args: argparse.Namespace) -> int:
    from aimass.stack import jobs

    overrides = dict(item.split("=", 1) for item in args.set)
    _say("submitting the inference job ...")
    job_id = jobs.submit(settings, overrides, savepoint=args.savepoint)
    _say(f"job {job_id} is RUNNING: {settings.flink.rest_url}/#/job/running/{job_id}/overview")
    return 0


def cmd_top(settings: Settings, args: argparse.Namespace) -> int:
    from aimass.stack import top

    if args.interval <= 0:
        _say("--interval must be > 0")
        return 2
    return top.run(settings, args.interval, args.once)


def cmd_savepoint(settings: Settings, args: argparse.Namespace) -> int:
    from aimass.stack import jobs
    from aimass.stack.flink import FlinkCluster

    cluster = FlinkCluster(settings)
    running = cluster.running_job(settings.job.name)
    if running is None:
        _say(f"no job named {settings.job.name} is running: nothing to take a savepoint of")
        return 1
    location = jobs.savepoint(cluster, settings, str(running["jid"]), stop=args.stop)
    print(location)
    return 0


def cmd_cancel(settings: Settings, args: argparse.Namespace) -> int:
    from aimass.stack import jobs

    cancelled = jobs.cancel(settings)
    _say(f"cancelled {', '.join(cancelled)}" if cancelled else "no inference job was running")
    return 0


def _print_subtasks(title: str, vertices: Sequence[Vertex]) -> None:
    for v in vertices:
        if BATCH_INFER.name in v.name:
            _say(f"{title}: {BATCH_INFER.name} parallelism {v.parallelism}, "
                 f"records in per subtask {list(v.records_in)}")


def cmd_rescale(settings: Settings, args: argparse.Namespace) -> int:
    from aimass.stack import rescale
    from aimass.stack.flink import FlinkCluster

    cluster = FlinkCluster(settings)
    job = cluster.running_job(settings.job.name)
    if job is not None:
        _print_subtasks("before", rescale.vertices(cluster, str(job["jid"])))
    result = rescale.rescale(settings, args.parallelism, method=args.via, say=_say)
    if args.observe > 0:
        time.sleep(args.observe)
    _print_subtasks("after", rescale.vertices(cluster, result.job_id))
    return 0


def cmd_taskmanagers(settings: Settings, args: argparse.Namespace) -> int:
    from aimass.stack.local import LocalStack

    done = LocalStack(settings, say=_say).set_taskmanagers(args.count)
    _say(f"{args.count} TaskManagers running" + (f" ({'; '.join(done)})" if done else " (nothing to change)"))
    return 0


def _print_next_steps(settings: Settings) -> None:
    _say(f"Flink web UI: {settings.flink.rest_url}   (stop everything with `make down` or `aimass down`)")


def register(sub: Any) -> None:
    """Add the stack's commands to the ``aimass`` parser's subcommands."""
    sub.add_parser("up", help="start Kafka and the Flink cluster (idempotent)").set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop everything `up` started")
    down.add_argument("--purge", action="store_true", help="also delete data, logs and checkpoints")
    down.set_defaults(func=cmd_down)
    sub.add_parser("status", help="processes, pids, web UI, jobs, topics and lag").set_defaults(func=cmd_status)
    logs = sub.add_parser("logs", help="show a component's log")
    logs.add_argument("component", nargs="?", default="jobmanager",
                      help="kafka, jobmanager, taskmanager-N or objectstore")
    logs.add_argument("-n", "--lines", type=int, default=40, help="lines to show (default 40)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep following")
    logs.set_defaults(func=cmd_logs)
    submit = sub.add_parser("submit", help="submit the inference job and wait until it runs")
    submit.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="job setting override, e.g. --set job.delivery=at-least-once")
    submit.add_argument("--savepoint", metavar="URI",
                        help="start from this savepoint (its state and source offsets), e.g. one `aimass savepoint` "
                        "printed, here or on another cluster that can read it")
    submit.set_defaults(func=cmd_submit)
    top = sub.add_parser("top", help="a live view of the running job: rates, backlog, batches, latency, errors, load",
                         description="Refreshes in place until Ctrl-C: requests in and results out per second, "
                         "backlog, batch sizes, end-to-end and inference latency, error results by status, dead "
                         "letters by reason, busy time per batch-infer subtask, the last checkpoint's duration.")
    top.add_argument("--interval", type=float, default=2.0, metavar="S", help="seconds between refreshes (2)")
    top.add_argument("--once", action="store_true", help="print one frame (rates over one interval) and exit")
    top.set_defaults(func=cmd_top)
    take = sub.add_parser("savepoint", help="take a savepoint of the running inference job and print where it is",
                          description="A savepoint under the storage settings' savepoints/ folder (AIMASS_STORAGE_URI: "
                          "file:// or s3://). `aimass submit --savepoint URI` restores it.")
    take.add_argument("--stop", action="store_true", help="stop the job with the savepoint")
    take.set_defaults(func=cmd_savepoint)
    sub.add_parser("cancel", help="cancel the running inference job").set_defaults(func=cmd_cancel)
    rescale = sub.add_parser(
        "rescale", help="change the running job's parallelism, keeping its state and pending requests",
        description="Change the running inference job's parallelism. Keyed state (pending batches, "
        "de-duplication, counters) moves with its keys; the limit is the job's max parallelism "
        "(AIMASS_JOB_MAX_PARALLELISM, fixed for the life of its state) and the cluster's task slots.",
    )
    rescale.add_argument("parallelism", type=int, help="the new parallelism")
    rescale.add_argument("--via", choices=["adaptive", "savepoint"], default="adaptive",
                         help="adaptive: the adaptive scheduler's REST endpoint (default); "
                         "savepoint: stop with a savepoint and resubmit")
    rescale.add_argument("--observe", type=float, default=0.0, metavar="S",
                         help="wait S seconds before printing the per-subtask record counts")
    rescale.set_defaults(func=cmd_rescale)
    tms = sub.add_parser("taskmanagers", help="start or stop TaskManagers on the local stack")
    tms.add_argument("count", type=int, help="how many TaskManagers should run")
    tms.set_defaults(func=cmd_taskmanagers)
