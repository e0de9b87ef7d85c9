"""``aimass deploy``, ``retire``, ``alias``, ``split``, ``shadow``, ``promote``, ``rollback``,
``routes``, ``sync``: the control topic from the command line (docs/CONTROL.md).

Each command reads the routing back from the control topic, checks the change with the job's
own rules (refused here with the job's message, nothing published), publishes it, and says
when it takes effect.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aimass.settings import Settings


def _weights(items: list[str]) -> tuple[tuple[str, float], ...]:
    weights = []
    for item in items:
        version, sep, weight = item.partition("=")
        try:
            if not sep:
                raise ValueError
            weights.append((version, float(weight)))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r}: expected VERSION=WEIGHT, e.g. 2=0.1") from None
    return tuple(weights)


def _admin(settings: Settings, args: argparse.Namespace) -> Any:
    from aimass.control.admin import ControlAdmin

    return ControlAdmin(settings, activation_ms=args.in_ms)


def _publish(settings: Settings, args: argparse.Namespace, action: Any) -> int:
    from aimass.control.admin import AdminError

    with _admin(settings, args) as admin:
        try:
            command = admin.publish(action)
        except AdminError as exc:
            print(f"aimass {args.command}: {exc}", file=sys.stderr)
            return 1
    print(f"published: {command.describe()} (effective in {args.in_ms} ms, command {command.command_id})")
    return 0


def cmd_deploy(settings: Settings, args: argparse.Namespace) -> int:
    from aimass.control.admin import AdminError

    def progress(done: int, total: int) -> None:
        print(f"\ruploading {done / 1e6:.1f} / {total / 1e6:.1f} MB", end="", file=sys.stderr, flush=True)

    with _admin(settings, args) as admin:
        try:
            command = admin.deploy(args.directory, upload_bytes=not args.file_uri, progress=progress)
        except AdminError as exc:
            print(f"\naimass deploy: {exc}", file=sys.stderr)
            return 1
    print(f"\npublished: {command.describe()} (command {command.command_id})")
    return 0


def cmd_simple(settings: Settings, args: argparse.Namespace) -> int:
    from aimass.control import commands as c

    if args.command == "retire":
        action: Any = c.Retire(args.model, args.version)
    elif args.command == "alias":
        action = c.SetAlias(args.model, args.alias, None if args.remove else args.version)
        if not args.remove and not args.version:
            print("aimass alias: give a VERSION, or --remove", file=sys.stderr)
            return 2
    elif args.command == "split":
        action = c.SetSplit(args.model, () if args.clear else _weights(args.weights))
    elif args.command == "shadow":
        action = c.SetShadow(args.model, None if args.clear else args.version, args.fraction)
        if not args.clear and not args.version:
            print("aimass shadow: give a VERSION, or --clear", file=sys.stderr)
            return 2
    elif args.command == "promote":
        action = c.Promote(args.model, args.version)
    else:
        action = c.Rollback(args.model)
    return _publish(settings, args, action)


def cmd_routes(settings: Settings, args: argparse.Namespace) -> int:
    from aimass.control.admin import describe_routing, to_json

    with _admin(settings, args) as admin:
        routing, _ = admin.routing()
        rows = describe_routing(routing)
        shadows = admin.shadow_counts()
        refusals = admin.refusals(args.refusals)
    if args.json:
        print(to_json(rows))
        return 0
    if not rows:
        print("nothing deployed (aimass deploy DIR, or aimass sync)")
    for row in rows:
        versions = ", ".join(f"{v}{'' if e['serving'] else ' (not serving)'} [{e['location']} {e['sha256']}]"
                             for v, e in row["versions"].items())
        print(f"{row['model']}: versions {versions}")
        print(f"  no version asked -> {'split ' + _split(row['split']) if row['split'] else row['default']}")
        for alias, version in sorted(row["aliases"].items()):
            print(f"  alias {alias} -> {version}")
        if row["shadow"]:
            counts = shadows.get(row["model"])
            agreement = "" if counts is None or counts.agreement is None else (
                f", agreement {counts.agreement:.1%} of {counts.agree + counts.disagree}")
            print(f"  shadow {row['shadow']['version']} on {row['shadow']['fraction']:.1%} of requests{agreement}")
    for letter in refusals:
        print(f"refused (command {letter.request_id}): {letter.message}")
    return 0


def _split(split: dict[str, float]) -> str:
    return " ".join(f"{v}={w:.2%}" for v, w in split.items())


def cmd_sync(settings: Settings, args: argparse.Namespace) -> int:
    with _admin(settings, args) as admin:
        lines = list(admin.sync(args.models_dir or settings.paths.models_dir))
    for line in lines:
        print(line)
    if not lines:
        print("every version in the model folder is deployed")
    return 0


def register(subparsers: Any) -> None:
    """Add the control commands to an ``add_subparsers()`` object."""
    def add(name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
        p = subparsers.add_parser(name, help=help_text, description=help_text + " See docs/CONTROL.md.")
        p.add_argument("--in", dest="in_ms", type=int, default=1000, metavar="MS",
                       help="take effect MS milliseconds from now (default 1000: every subtask has it by then)")
        p.set_defaults(func=func)
        return p

    p = add("deploy", "check a model version directory loads, upload it, and publish its deploy", cmd_deploy)
    p.add_argument("directory", type=Path, metavar="DIR", help="a <model>/<version>/ directory with model.onnx "
                   "and model.json")
    p.add_argument("--file-uri", action="store_true", help="do not upload: TaskManagers read DIR itself (one "
                   "machine or a shared folder)")
    p = add("retire", "stop serving a version (refused while an alias, the split or the shadow uses it)", cmd_simple)
    p.add_argument("model")
    p.add_argument("version")
    p = add("alias", "point an alias (stable, canary, any name) at a version", cmd_simple)
    p.add_argument("model")
    p.add_argument("alias")
    p.add_argument("version", nargs="?")
    p.add_argument("--remove", action="store_true", help="remove the alias")
    p = add("split", "split the requests that name no version by weight, e.g. `split digits 1=0.9 2=0.1`",
            cmd_simple)
    p.add_argument("model")
    p.add_argument("weights", nargs="*", metavar="VERSION=WEIGHT", help="weights summing to 1")
    p.add_argument("--clear", action="store_true", help="remove the split")
    p = add("shadow", "also run a share of the model's requests on a shadow version (results to the shadow topic)",
            cmd_simple)
    p.add_argument("model")
    p.add_argument("version", nargs="?")
    p.add_argument("--fraction", type=float, default=1.0, help="share of requests mirrored (default 1)")
    p.add_argument("--clear", action="store_true", help="stop shadowing")
    p = add("promote", "make a version stable: the stable alias to it, the split cleared", cmd_simple)
    p.add_argument("model")
    p.add_argument("version")
    p = add("rollback", "clear the split and the shadow, stable back to before the last promote", cmd_simple)
    p.add_argument("model")
    p = add("routes", "what serves what now, read back from the control topic, with shadow agreement", cmd_routes)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--refusals", type=int, default=5, metavar="N", help="show the job's last N refusals (default 5)")
    p = add("sync", "publish a deploy for every version in the model folder the control topic does not know",
            cmd_sync)
    p.add_argument("--models-dir", type=Path, help="model folder (default: the paths.models_dir setting)")
