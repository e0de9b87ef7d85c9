"""Processes the local stack starts, tracked by pid files, and the ports they need.

Every process is started in a session of its own, its pid written under the state folder's
``run/`` directory together with a marker of its command line. ``stop`` signals only a pid
whose command line still carries that marker, so a stale pid file (or a pid the OS has since
given to another program) never makes us kill something we did not start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class StackError(RuntimeError):
    """A problem starting or stopping the stack, with a message that names the fix."""


@dataclass(frozen=True)
class ManagedProcess:
    """A long-running process of the stack: its name, pid file, log file and identifying marker."""

    name: str
    run_dir: Path
    log_dir: Path
    marker: str
    """A string that appears in the process's command line (the state folder path)."""
    out_max_bytes: int = 0
    """Roll the ``.out`` file over at this size, keeping ``out_backups`` older ones
    (:mod:`aimass.stack.outcap`); 0: append to it without limit."""
    out_backups: int = 1
    """Rolled-over ``.out`` files kept (``<name>.out.1`` is the newest) when ``out_max_bytes`` is set."""
    launcher: tuple[str, ...] = ()
    """A command the process is started through, which must exec it (same pid): e.g.
    ``("ip", "netns", "exec", "<namespace>")`` for a host of the multi-host tests."""

    @property
    def pid_file(self) -> Path:
        """Where the pid is kept."""
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        """Where stdout and stderr go."""
        return self.log_dir / f"{self.name}.out"

    def pid(self) -> int | None:
        """The pid if this process is running (and really is ours), else None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _is_ours(pid, self.marker) else None

    def clear_stale(self) -> bool:
        """Remove the pid file if it names no live process of ours; True if one was removed."""
        if self.pid_file.exists() and self.pid() is None:
            self.pid_file.unlink(missing_ok=True)
            return True
        return False

    def start(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None) -> int:
        """Start detached (own session), output appended to the log file; returns the pid.

        With ``out_max_bytes`` the command is started through :mod:`aimass.stack.outcap`,
        which execs it (the pid stays the command's) with its output piped into a writer
        that rotates the log file.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.out_max_bytes > 0:
            argv = [sys.executable, "-I", "-S", str(Path(__file__).with_name("outcap.py")), str(self.log_file),
                    str(self.out_max_bytes), str(self.out_backups), "--", *argv]
        argv = [*self.launcher, *argv]
        with open(self.log_file, "ab") as out:  # the wrapper's own output, until it hands over to the pipe
            proc = subprocess.Popen(  # noqa: S603 - argv is built by the project, not from input
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc.pid

    def exited_early(self) -> bool:
        """True if the pid file exists but its process is gone (it crashed at start).

        Liveness only, not the marker: while a start script execs java, its command line and
        environment can read empty for a moment, and a live process must not count as exited
        (nor be forgotten, and left running, by the clean-up that follows).
        """
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return False
        return not _alive(pid)

    def stop(self, timeout_s: float = 20.0) -> bool:
        """SIGTERM the process group, then SIGKILL after ``timeout_s``; True if one was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        # Children (Python workers in process mode) share the group: make sure none is left.
        _signal_group(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> None:
        """SIGKILL the process and its group (fault injection); its pid file stays, as after a crash.

        The whole group, as a crashed container or a supervisor's control group takes its
        children along: a TaskManager's Python workers (process mode) would otherwise live on
        as orphans, outside any group ``stop`` signals later.
        """
        pid = self.pid()
        if pid is not None:
            _signal_group(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _is_ours(pid: int, marker: str) -> bool:
    if not _alive(pid):
        return False
    # The marker is in the command line (java) or in the environment we started it with
    # (the Flink scripts, before they exec java).
    for attempt in range(3):  # an exec in progress can read empty for a moment
        for part in ("cmdline", "environ"):
            try:
                if marker.encode() in Path(f"/proc/{pid}/{part}").read_bytes():
                    return True
            except OSError:
                continue
        if attempt < 2:
            time.sleep(0.05)
    return False


def private_dir(path: Path) -> None:
    """Create ``path`` (and its parents) if missing, and make it readable by its owner only.

    The state folder holds Kafka's segments (every request and result), checkpoints, logs and
    key files: under the usual umask 022 each of them would be readable by every local user.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)


def port_in_use(host: str, port: int) -> bool:
    """True if something already listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def port_holder(port: int) -> str:
    """Best-effort description of the process listening on ``port`` (pid and command)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                local, state, inode = parts[1], parts[3], parts[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes.add(inode)
    if not inodes:
        return "an unknown process"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                    return f"pid {proc.name} ({cmd[:120].strip()})"
    return "a process of another user"


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a text file ('' if it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
