"""Run a command with its stdout and stderr going to a size-capped, rotating file.

``python outcap.py FILE MAX_BYTES BACKUPS -- COMMAND...`` forks a writer, points the command's
stdout and stderr at a pipe into it and then *execs* the command, so the pid the caller got
is the command's own (a JVM keeps it: the Flink scripts exec java). The writer appends what
the pipe carries to ``FILE``; when the next chunk would take the file past ``MAX_BYTES`` it
renames ``FILE`` to ``FILE.1`` (``FILE.1`` to ``FILE.2`` ..., the oldest beyond ``BACKUPS``
deleted) and starts a new ``FILE``. So a process's ``.out`` never holds more than
``(1 + BACKUPS) * MAX_BYTES`` on disk, whatever prints to it (PyFlink's thread mode runs user
Python inside the TaskManager JVM, where a stray ``print`` or a native library writes to fd 1).

Why a pipe and a writer rather than the alternatives: truncating the file from outside needs a
watcher that lives as long as the stack, which ``aimass up`` (it exits) does not; ``ulimit -f``
kills the process with SIGXFSZ at the limit; log4j only sees what goes through log4j. The
writer is double-forked into a session of its own: it is neither a descendant of the command
(benchmark meters and fault injection walk a TaskManager's descendants) nor in its process
group (``stop`` and ``kill`` signal that group), so it outlives the command's last write and
exits at end of file, after the last lines of a crash or a SIGKILL are on disk. It never stops
draining the pipe: if the file cannot be written (disk full), output is dropped, the command
never blocks on a full pipe nor dies of a broken one.

Standard library only, run by path with ``python -I -S``: it starts before the command, with
no project on ``sys.path``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import BinaryIO

CHUNK = 64 * 1024


def rotate(path: str, backups: int) -> None:
    """Shift ``path`` to ``path.1``, ``path.1`` to ``path.2``, ... keeping ``backups`` of them."""
    for index in range(backups - 1, 0, -1):
        older = f"{path}.{index}"
        if os.path.exists(older):
            os.replace(older, f"{path}.{index + 1}")
    if backups > 0:
        os.replace(path, f"{path}.1")
    else:
        os.truncate(path, 0)


def copy(source: int, path: str, max_bytes: int, backups: int) -> None:
    """Copy from the file descriptor ``source`` into ``path`` until end of file, rotating at ``max_bytes``."""
    chunk_size = max(1, min(CHUNK, max_bytes))
    out: BinaryIO | None = None
    size = 0
    while True:
        chunk = os.read(source, chunk_size)
        if not chunk:
            break
        try:
            if out is None:
                out = open(path, "ab", buffering=0)  # noqa: SIM115 - reopened after each rotation
                size = out.seek(0, os.SEEK_END)
            if size and size + len(chunk) > max_bytes:
                out.close()
                out = None
                rotate(path, backups)
                out = open(path, "ab", buffering=0)  # noqa: SIM115
                size = 0
            out.write(chunk)
            size += len(chunk)
        except OSError:
            # Disk full, folder removed (`aimass down --purge`): drop this chunk, keep draining,
            # and try the file again with the next one.
            if out is not None:
                out.close()
            out = None
    if out is not None:
        out.close()


def run(path: str, max_bytes: int, backups: int, command: Sequence[str]) -> None:
    """Start the writer, then exec ``command`` with stdout and stderr into it (never returns)."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the intermediate child: forks the writer and exits at once
        try:
            if os.fork() == 0:
                os.setsid()
                os.close(write_end)
                devnull = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(devnull, fd)
                copy(read_end, path, max_bytes, backups)
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    os.close(read_end)
    os.dup2(write_end, 1)
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        os.execvp(command[0], list(command))  # noqa: S606 - the command ManagedProcess was given
    except OSError as exc:
        os.write(2, f"outcap: cannot run {command[0]}: {exc}\n".encode())
        os._exit(127)


def main(argv: Sequence[str]) -> None:
    """``FILE MAX_BYTES BACKUPS -- COMMAND...``."""
    if len(argv) < 5 or argv[3] != "--":
        sys.exit("usage: outcap.py FILE MAX_BYTES BACKUPS -- COMMAND...")
    run(argv[0], int(argv[1]), int(argv[2]), argv[4:])


if __name__ == "__main__":
    main(sys.argv[1:])
