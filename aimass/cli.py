"""``aimass``: the one command. Each wing registers its own subcommands from its ``cli.py``
(``stack``, ``tools``, ``autoscale``, ``compress``, ``control``, ``client``, ``graphs``,
``deploy``); this module
only builds the parser and reports errors the same way for all.

``aimass --help`` lists the commands. Every command reads the same settings (``AIMASS_*``
variables, see ``aimass/settings.py``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from aimass.autoscale.cli import register as register_autoscale
from aimass.client.cli import register as register_client
from aimass.compress.cli import register as register_compress
from aimass.control.cli import register as register_control
from aimass.deploy.cli import register as register_deploy
from aimass.graphs.cli import register as register_graph
from aimass.settings import Settings, SettingsError
from aimass.stack.cli import register as register_stack
from aimass.stack.procs import StackError
from aimass.tools.cli import register as register_tools


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="aimass",
        description="AI Mass: asynchronous ONNX model serving on Apache Flink and Kafka.",
        epilog="Settings come from AIMASS_* environment variables (see aimass/settings.py), "
        "e.g. AIMASS_FLINK_REST_PORT=8082 aimass up",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register_stack(sub)
    register_tools(sub)
    register_autoscale(sub)
    register_compress(sub)
    register_control(sub)
    register_client(sub)
    register_graph(sub)
    register_deploy(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aimass`` console script."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.load()
        return int(args.func(settings, args))
    except (StackError, SettingsError) as exc:
        print(f"aimass {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # urllib's URLError included: the cluster's REST API is not there
        print(f"aimass {args.command}: error: {exc}; is the stack running? Start it with `aimass up`.",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"aimass {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
