"""``aimass models`` and ``aimass demo``: the demo models and the README's demo run."""

from __future__ import annotations

import argparse
from typing import Any

from aimass.settings import Settings
from aimass.stack.cli import _say


def cmd_models(settings: Settings, args: argparse.Namespace) -> int:
    from aimass.tools.demo import build_demo_models

    built = build_demo_models(settings.paths.models_dir, force=args.force)
    for key, value in built.items():
        _say(f"{key}: {value}")
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from aimass.tools.demo_run import run_demo

    return run_demo(settings, count=args.count, say=_say)


def register(sub: Any) -> None:
    """Add the demo commands to the ``aimass`` parser's subcommands."""
    models = sub.add_parser("models", help="build the demo models into the model repository")
    models.add_argument("--force", action="store_true", help="rebuild even if present")
    models.set_defaults(func=cmd_models)
    demo = sub.add_parser("demo", help="up + models + submit, then send demo digits and print results")
    demo.add_argument("--count", type=int, default=300, help="demo requests to send (default 300)")
    demo.set_defaults(func=cmd_demo)
