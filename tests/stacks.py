"""A real local stack for the length of a block (the session's test stack, and the modules that
run one of their own)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from aimass.settings import Settings


@contextlib.contextmanager
def running_stack(settings: Settings, label: str = "stack") -> Iterator[Any]:
    """A LocalStack of ``settings``, purged and started, stopped at the end; nothing of it may
    outlive the block."""
    from aimass.stack.local import LocalStack
    from aimass.tools.demo import build_demo_models

    build_demo_models(settings.paths.models_dir)
    stack = LocalStack(settings, say=lambda m: print(f"[{label}] {m}"))
    stack.down(purge=True)
    try:
        stack.up()
        yield stack
    finally:
        stack.down()
    leftover = [p.name for p in stack.processes() if p.pid() is not None]
    assert not leftover, f"processes left running after down: {leftover}"
