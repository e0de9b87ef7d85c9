"""``aimass autoscale``: the command-line face of :mod:`aimass.autoscale`.

Example: ``aimass autoscale --min 1 --max 4 --step double --add-taskmanagers`` runs until
Ctrl-C and logs one line per decision; ``--once --dry-run`` prints a single decision.
"""

from __future__ import annotations

import argparse
import dataclasses
import threading
from typing import Any

# Flag -> AutoscaleSettings field; each flag overrides its AIMASS_AUTOSCALE_* variable.
_FLAGS: dict[str, tuple[str, type, str]] = {
    "--min": ("min_parallelism", int, "lowest parallelism"),
    "--max": ("max_parallelism", int, "highest parallelism"),
    "--interval": ("interval_s", float, "seconds between samples"),
    "--cooldown": ("cooldown_s", float, "seconds without decisions after a change"),
    "--sustain": ("sustain_samples", int, "consecutive samples a condition must hold"),
    "--scale-up-lag": ("scale_up_lag", int, "records of lag that call for more subtasks"),
    "--scale-up-busy": ("scale_up_busy", float, "busy share (0..1) of the busiest subtask that calls for more"),
    "--scale-up-latency-ms": ("scale_up_latency_ms", float, "p90 end-to-end latency that calls for more (0: off)"),
    "--scale-down-lag": ("scale_down_lag", int, "lag at most this to scale down"),
    "--scale-down-busy": ("scale_down_busy", float, "busy share at most this to scale down"),
}


def _say(message: str) -> None:
    print(f"[autoscale] {message}", flush=True)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``autoscale`` command to an ``add_subparsers()`` object; returns its parser."""
    p = subparsers.add_parser(
        "autoscale", help="scale the running job between a minimum and a maximum parallelism on its load",
        description="Sample the consumer lag, the busy time of the batch-infer subtasks and the end-to-end "
        "latency of fresh results every interval; scale up or down (aimass rescale) when a condition holds "
        "for several samples, then wait a cool-down. One log line per decision. Defaults come from the "
        "AIMASS_AUTOSCALE_* settings; see docs/SCALING.md.",
    )
    for flag, (name, kind, text) in _FLAGS.items():
        p.add_argument(flag, dest=name, type=kind, default=None, metavar="N" if kind is int else "X",
                       help=f"{text} (AIMASS_AUTOSCALE_{name.upper()})")
    p.add_argument("--step", choices=["one", "double"], default=None,
                   help="add/remove one subtask, or double/halve (AIMASS_AUTOSCALE_STEP)")
    p.add_argument("--add-taskmanagers", action="store_true", default=None,
                   help="start local TaskManagers when scaling up beyond the cluster's slots")
    p.add_argument("--once", action="store_true", help="take SUSTAIN samples, act on one decision, exit")
    p.add_argument("--dry-run", action="store_true", help="log decisions without rescaling")
    p.set_defaults(func=cmd_autoscale)
    return p


def cmd_autoscale(settings: Any, args: argparse.Namespace) -> int:
    """Run the loop until Ctrl-C (or one decision with ``--once``); 0 when it ended normally."""
    from aimass.autoscale.loop import run

    names = [name for name, _, _ in _FLAGS.values()] + ["step", "add_taskmanagers"]
    changes = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if changes:
        settings = dataclasses.replace(settings, autoscale=dataclasses.replace(settings.autoscale, **changes))
        settings.validate()
    stop = threading.Event()
    try:
        steps = run(settings, _say, stop, once=args.once, dry_run=args.dry_run)
    except KeyboardInterrupt:
        stop.set()
        _say("stopped")
        return 0
    taken = sum(1 for s in steps if s.taken)
    _say(f"{len(steps)} scaling decisions, {taken} taken")
    return 0
