"""Model compression: new, smaller or faster versions of a model in the repository.

Public API:

* :func:`compress` with a :class:`CompressRequest`: prune, quantize (dynamic or static int8),
  convert to fp16 and/or optimize a version offline into a new version, measured beside its
  parent, published atomically; returns a :class:`Report`.
* :class:`CompressError`: why a run was refused, in one line that names the fix.
* :data:`METHODS`: the method names, in the order a combination applies them.
* :func:`aimass.compress.cli.register`: adds the ``aimass compress`` command to a parser.

Nothing here imports Flink. The names are loaded on first use, so that ``aimass`` commands
that do not compress never import ONNX Runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aimass.compress.build import CompressRequest, compress
    from aimass.compress.methods import METHODS, CompressError
    from aimass.compress.report import Candidate, Report

_HOMES = {
    "CompressRequest": "build", "compress": "build", "METHODS": "methods", "CompressError": "methods",
    "Candidate": "report", "Report": "report",
}
__all__ = ["METHODS", "Candidate", "CompressError", "CompressRequest", "Report", "compress"]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"aimass.compress.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'aimass.compress' has no attribute {name!r}")
