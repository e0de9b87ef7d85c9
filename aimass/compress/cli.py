"""``aimass compress``: the command-line face of :mod:`aimass.compress`.

Example: ``aimass compress digits --method dynamic-int8`` writes ``models/digits/2`` with a
``report.json`` and ``report.md`` and prints the report's table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

METHOD_NAMES = ("dynamic-int8", "static-int8", "prune", "fp16", "optimize")
"""As :data:`aimass.compress.methods.METHODS`, repeated here so the parser does not import ONNX Runtime."""


def _methods(text: str) -> list[str]:
    chosen = [m.strip() for m in text.split(",") if m.strip()]
    for method in chosen:
        if method not in METHOD_NAMES:
            raise argparse.ArgumentTypeError(f"unknown method {method!r}: choose from {', '.join(METHOD_NAMES)}")
    return chosen


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``compress`` command to an ``add_subparsers()`` object; returns its parser."""
    p = subparsers.add_parser(
        "compress", help="make a quantized, pruned, fp16 or optimized version of a model, with a report",
        description="Write MODEL's compressed variant as a new version, measured beside its parent "
        "(size, latency at batch 1 and 32, rows/s, accuracy or agreement). Methods combine and run in the "
        "order prune -> int8 or fp16 -> optimize. See docs/COMPRESSION.md.",
    )
    p.add_argument("model", metavar="MODEL", help="model name in the repository")
    p.add_argument("--method", dest="methods", type=_methods, action="append", required=True,
                   metavar="METHOD[,METHOD]", help=f"one or more of {', '.join(METHOD_NAMES)} (repeat or comma-join)")
    p.add_argument("--from-version",
                   help="version to compress (default: the newest serving version that is not itself a variant)")
    p.add_argument("--to-version", help="version to write (default: one more than the highest)")
    p.add_argument("--calibration", type=Path, metavar="FILE",
                   help="static-int8: representative inputs, .npy (one input) or .npz (arrays named by input)")
    p.add_argument("--sparsity", type=float, default=0.5, help="prune: share of each weight matrix to zero, [0, 1)")
    p.add_argument("--opt-level", choices=("basic", "extended", "all"), default="extended",
                   help="optimize: ONNX Runtime graph optimization level (default extended)")
    p.add_argument("--per-channel", action="store_true", help="int8: one scale per output channel")
    p.add_argument("--max-accuracy-drop", type=float, default=1.0, metavar="POINTS",
                   help="points of accuracy the variant may lose and still serve (default 1.0)")
    p.add_argument("--force", action="store_true", help="keep the variant serving even past --max-accuracy-drop")
    p.add_argument("--repeats", type=int, default=50, help="timed runs per latency figure (default 50)")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs before timing (default 5)")
    p.add_argument("--eval-rows", type=int, default=512, help="random rows when there is no held-out set")
    p.add_argument("--holdout", type=Path, metavar="FILE.npz",
                   help="labelled held-out set (default: <models>/.holdout/MODEL.npz when it exists)")
    p.add_argument("--no-earlier", dest="compare_earlier", action="store_false",
                   help="do not re-measure earlier variants of the same parent")
    p.add_argument("--models-dir", type=Path, help="model repository (default: the paths.models_dir setting)")
    p.add_argument("--report-dir", type=Path, help="also write the report here as MODEL-VERSION.json/.md")
    p.set_defaults(func=cmd_compress)
    return p


def cmd_compress(settings: Any, args: argparse.Namespace) -> int:
    """Run a compression; 0 on success, 2 with a one-line error when it was refused."""
    from aimass.compress.build import CompressRequest, compress
    from aimass.compress.methods import CompressError
    from aimass.compress.report import render_table

    models_dir = args.models_dir or settings.paths.models_dir
    request = CompressRequest(
        models_dir=Path(models_dir), name=args.model, methods=tuple(m for group in args.methods for m in group),
        from_version=args.from_version, to_version=args.to_version, sparsity=args.sparsity,
        calibration=args.calibration, opt_level=args.opt_level, per_channel=args.per_channel,
        max_accuracy_drop=args.max_accuracy_drop, force=args.force, repeats=args.repeats, warmup=args.warmup,
        eval_rows=args.eval_rows, holdout=args.holdout, threads=settings.engine.intra_op_threads,
        compare_earlier=args.compare_earlier, report_dir=args.report_dir,
    )
    try:
        report = compress(request)
    except CompressError as exc:
        print(f"aimass compress: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the repository or a report folder cannot be written
        print(f"aimass compress: error: {exc}: check the folder is writable and has space", file=sys.stderr)
        return 2
    print(render_table(report))
    where = Path(models_dir) / report.model / report.new_version
    state = "serving" if report.serving else 'NOT serving ("serving": false; pin the version, or rerun with --force)'
    print(f"\nwrote {where} ({state}); report: {where / 'report.md'}")
    print(f"a running job serves it once it is deployed: aimass deploy {where}  (or aimass sync)")
    return 0
