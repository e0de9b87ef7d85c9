"""A managed process's ``.out`` file capped by the rotating writer (:mod:`aimass.stack.outcap`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from aimass.faults.inject import descendants
from aimass.stack.procs import ManagedProcess


def _proc(tmp_path: Path, max_bytes: int = 10_000, backups: int = 2) -> ManagedProcess:
    return ManagedProcess("capped", tmp_path / "run", tmp_path / "logs", marker=str(tmp_path),
                          out_max_bytes=max_bytes, out_backups=backups)


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:  # between a rotation's rename and the new file
        return b""


def _writers(log_file: Path) -> list[int]:
    """Pids of the writers copying into ``log_file``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(part.endswith(b"outcap.py") for part in cmdline) and str(log_file).encode() in cmdline:
            found.append(int(entry.name))
    return found


def test_output_rolls_over_at_the_cap_and_only_the_newest_files_are_kept(tmp_path: Path) -> None:
    proc = _proc(tmp_path)
    script = (
        "import sys\n"
        "for i in range(3000): print(f'line {i:05d} ' + 'x' * 30)\n"
        "sys.stdout.flush()\n"
        "print('last', file=sys.stderr)\n"  # stderr goes the same way
    )
    proc.start([sys.executable, "-c", script, str(tmp_path)], os.environ)
    assert _wait(lambda: b"last" in _read(proc.log_file) and not _writers(proc.log_file))
    files = sorted(p.name for p in proc.log_dir.iterdir())
    assert files == ["capped.out", "capped.out.1", "capped.out.2"]  # ~120 kB written, 3 x 10 kB kept
    assert all((proc.log_dir / name).stat().st_size <= 10_000 for name in files)
    kept = b"".join((proc.log_dir / name).read_bytes() for name in reversed(files))
    expected = b"".join(f"line {i:05d} {'x' * 30}\n".encode() for i in range(3000)) + b"last\n"
    # The newest output, nothing in between lost. Each backup holds more than half the cap (a file
    # rolls over before a chunk that would pass it, and a chunk is at most the cap; the current
    # file may have just started): 16,281 bytes were kept once in CI, so not "near 3 x 10 kB".
    assert len(kept) > 10_000 and expected.endswith(kept)


def test_the_pid_is_the_commands_and_the_writer_stays_out_of_its_tree_and_group(tmp_path: Path) -> None:
    proc = _proc(tmp_path)
    script = "import time\nprint('ready', flush=True)\ntime.sleep(60)"
    pid = proc.start([sys.executable, "-c", script, str(tmp_path)], os.environ)
    # exec'd: the command's own line (between fork and the first exec the child still shows
    # its parent's line, which lacks "outcap.py" too: waiting for that alone raced)
    def execd() -> bool:
        line = Path(f"/proc/{pid}/cmdline").read_bytes()
        return b"time.sleep(60)" in line and b"outcap.py" not in line

    assert _wait(execd)
    assert proc.pid() == pid
    assert os.readlink(f"/proc/{pid}/fd/1").startswith("pipe:")
    assert _wait(lambda: b"ready" in _read(proc.log_file))
    [writer] = _writers(proc.log_file)
    assert descendants(pid) == []  # meters and fault injection walk a TaskManager's descendants
    assert os.getpgid(writer) != os.getpgid(pid)  # stop() and kill() signal the process group
    proc.kill()  # SIGKILL: the writer sees end of file and exits on its own
    assert _wait(lambda: not _writers(proc.log_file))
    assert proc.log_file.read_bytes() == b"ready\n"


def test_an_unwritable_log_never_blocks_the_command(tmp_path: Path) -> None:
    proc = _proc(tmp_path)
    go = tmp_path / "go"
    script = (
        "import os, sys, time\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.02)\n"
        "for _ in range(200): sys.stdout.write('y' * 10_000 + '\\n')\n"  # 2 MB, 30 pipe buffers
    )
    pid = proc.start([sys.executable, "-c", script, str(tmp_path)], os.environ)
    shutil.rmtree(proc.log_dir)  # as `aimass down --purge` would, under a running writer
    go.touch()
    assert _wait(lambda: proc.pid() is None, timeout=30)  # exited: its output was drained
    with contextlib.suppress(ChildProcessError):  # reaped already
        os.waitpid(pid, 0)
