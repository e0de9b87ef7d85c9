"""``aimass graph validate FILE``: check a graph file against the local model repository."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from aimass.settings import Settings


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``graph`` command to an ``add_subparsers()`` object; returns its parser."""
    p = subparsers.add_parser(
        "graph", help="inference graphs: check a graph file (docs/GRAPHS.md)",
        description="Graphs assemble models into one service: sequence, ensemble, switch (docs/GRAPHS.md).",
    )
    sub = p.add_subparsers(dest="graph_command", required=True, metavar="COMMAND")
    validate = sub.add_parser(
        "validate", help="check a graph file: cycles, unknown models, tensors that do not fit, merge shapes",
        description="Check FILE against the models in the model repository (--models-dir, default the "
        "settings' models folder). Prints the graph's inputs and outputs and the versions it pins, or the "
        "problem naming the step; exit status 0 when valid, 1 when not, 2 when FILE cannot be read.",
    )
    validate.add_argument("file", type=Path, metavar="FILE")
    validate.add_argument("--models-dir", type=Path, default=None, help="model repository to check against")
    validate.add_argument("--json", action="store_true", help="print the checked graph's model.json")
    validate.set_defaults(func=cmd_validate)
    deploy = sub.add_parser(
        "deploy", help="deploy a graph file through the control topic (its steps must be deployed)",
        description="Check FILE against the routing the control topic holds now, then publish its deploy: "
        "the graph is then served under its name like a model (aliases, splits and canaries apply). The "
        "job checks it again and refuses it with a control dead letter (`aimass control refusals`) if the "
        "routing changed in between.",
    )
    deploy.add_argument("file", type=Path, metavar="FILE")
    deploy.add_argument("--in", dest="in_ms", type=int, default=None, metavar="MS",
                        help="take effect this many ms from now (default: the control settings')")
    deploy.set_defaults(func=cmd_deploy)
    return p  # type: ignore[no-any-return]


def cmd_validate(settings: Settings, args: argparse.Namespace) -> int:
    from aimass.graphs.spec import GraphError, Member, check, load
    from aimass.serving.models import ModelRepository

    try:
        text = args.file.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"aimass graph validate: error: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    repository = ModelRepository(args.models_dir or settings.paths.models_dir)

    def lookup(model: str, version: str | None) -> Member:
        spec = repository.resolve(model, version)
        return Member(spec.version, spec.inputs, spec.outputs)

    try:
        checked = check(load(text), lookup)
    except GraphError as exc:
        print(f"aimass graph validate: {args.file}: refused: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(checked.metadata(), indent=2))
        return 0
    show = ", ".join
    print(f"{args.file}: graph {checked.name!r} version {checked.version!r} is valid")
    print(f"  inputs:  {show(f'{t.name} {t.dtype} {list(t.shape)}' for t in checked.inputs)}")
    print(f"  outputs: {show(f'{t.name} {t.dtype} {list(t.shape)}' for t in checked.outputs)}")
    return 0


def graph_deploy(text: str) -> Any:
    """The control topic's ``Deploy`` of a graph file's text (its bytes are its definition)."""
    import hashlib

    from aimass.control.commands import Deploy
    from aimass.graphs.spec import GRAPH_URI, load

    raw = load(text)
    data = text.encode("utf-8")
    return Deploy(str(raw.get("name")), str(raw.get("version")), GRAPH_URI, hashlib.sha256(data).hexdigest(),
                  len(data), text)


def cmd_deploy(settings: Settings, args: argparse.Namespace) -> int:
    from aimass.control.admin import AdminError, ControlAdmin
    from aimass.graphs.spec import GraphError

    try:
        text = args.file.read_text(encoding="utf-8")
        action = graph_deploy(text)
    except OSError as exc:
        print(f"aimass graph deploy: error: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except GraphError as exc:
        print(f"aimass graph deploy: {args.file}: refused: {exc}", file=sys.stderr)
        return 1
    with ControlAdmin(settings) as admin:
        try:
            command = admin.publish(action, args.in_ms)
        except AdminError as exc:
            print(f"aimass graph deploy: {exc}", file=sys.stderr)
            return 1
    print(f"published {command.describe()}: requests to {action.model!r} are served by the graph once the job "
          "has read it")
    return 0
