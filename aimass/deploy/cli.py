"""``aimass kubernetes``: render the Kubernetes manifests from the settings (docs/DEPLOY.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from aimass.settings import Settings, SettingsError


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``kubernetes`` command to an ``add_subparsers()`` object; returns its parser."""
    p = subparsers.add_parser(
        "kubernetes", help="render Kubernetes manifests (Flink Kubernetes Operator + gateway) from the settings",
        description="Render the inference job as a FlinkDeployment (application mode, checkpoints and HA on S3, "
        "the operator's autoscaler from AIMASS_AUTOSCALE_*), the gateway as a Deployment and Service, and the "
        "shared AIMASS_* settings as a ConfigMap. Set at least AIMASS_KAFKA_BOOTSTRAP_SERVERS and "
        "AIMASS_STORAGE_URI=s3://bucket/prefix. Without --out the manifests go to standard output "
        "(`aimass kubernetes | kubectl apply -f -`). Secrets are referenced, never rendered (docs/DEPLOY.md).",
    )
    p.add_argument("--out", type=Path, metavar="DIR", help="write one file per part and a kustomization.yaml into DIR")
    p.add_argument("--check", type=Path, metavar="DIR",
                   help="exit 1 if the files in DIR differ from what these settings render (a drift check)")
    p.add_argument("--example", action="store_true",
                   help="render from the example settings deploy/kubernetes/ holds instead of AIMASS_* variables")
    p.set_defaults(func=cmd_kubernetes)
    return p


def cmd_kubernetes(settings: Settings, args: argparse.Namespace) -> int:
    """``aimass kubernetes``."""
    from aimass.deploy import kubernetes

    if args.example:
        settings = Settings.load(env=kubernetes.EXAMPLE_ENV)
    try:
        texts = kubernetes.texts(settings)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    if args.check is not None:
        stale = [name for name, text in texts.items()
                 if not (args.check / name).exists() or (args.check / name).read_text(encoding="utf-8") != text]
        for name in stale:
            print(f"aimass kubernetes: {args.check / name} differs from the rendering", file=sys.stderr)
        return 1 if stale else 0
    if args.out is not None:
        for path in kubernetes.write(settings, args.out):
            print(f"wrote {path}")
        return 0
    sys.stdout.write("---\n".join(text for name, text in texts.items() if name != "kustomization.yaml"))
    return 0
