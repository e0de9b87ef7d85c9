"""A one-line progress display: rewritten in place on a terminal, a line every few seconds in logs."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Shows ``[i/n] system model: phase done/total (rate/s, elapsed)``."""

    def __init__(self, total_runs: int, stream: TextIO | None = None, every_s: float = 5.0) -> None:
        self.total_runs = total_runs
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every_s = every_s
        self.index = 0
        self.title = ""
        self.phase = ""
        self._phase_start = time.monotonic()
        self._last_line = 0.0
        self._open = False

    def run(self, title: str) -> None:
        """A new run (system x model) begins."""
        self.index += 1
        self.title = title
        self.say(f"[{self.index}/{self.total_runs}] {title}")

    def begin(self, phase: str) -> None:
        """A new phase of the current run begins."""
        self.phase = phase
        self._phase_start = time.monotonic()
        self._last_line = 0.0

    def update(self, done: int, total: int) -> None:
        """Progress of the current phase."""
        now = time.monotonic()
        elapsed = now - self._phase_start
        rate = done / elapsed if elapsed > 0 else 0.0
        line = (f"[{self.index}/{self.total_runs}] {self.title}: {self.phase} {done:,}/{total:,} "
                f"({rate:,.0f}/s, {elapsed:.0f}s)")
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
            self.stream.flush()
            self._open = True
        elif now - self._last_line >= self.every_s or done >= total:
            self.stream.write(line + "\n")
            self.stream.flush()
            self._last_line = now

    def say(self, message: str) -> None:
        """A message on a line of its own."""
        if self._open:
            self.stream.write("\n")
            self._open = False
        self.stream.write(message + "\n")
        self.stream.flush()
