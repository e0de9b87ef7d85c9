"""Process tracking and port checks of the local stack (no Kafka, no Flink)."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from aimass.settings import Settings
from aimass.stack.local import LocalStack
from aimass.stack.procs import ManagedProcess, StackError, port_holder, port_in_use


def _proc(tmp_path: Path) -> ManagedProcess:
    return ManagedProcess("sleeper", tmp_path / "run", tmp_path / "logs", marker=str(tmp_path))


def test_started_process_is_tracked_and_stopped_with_its_group(tmp_path: Path) -> None:
    proc = _proc(tmp_path)
    pid = proc.start([sys.executable, "-c", "import time; time.sleep(60)", str(tmp_path)], os.environ)
    assert proc.pid() == pid
    assert proc.stop(timeout_s=5) is True
    assert proc.pid() is None
    assert not proc.pid_file.exists()


def test_a_killed_process_takes_its_children_along_and_keeps_its_pid_file(tmp_path: Path) -> None:
    from aimass.faults.inject import descendants

    proc = _proc(tmp_path)
    child = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import time; time.sleep(60)'])"
    pid = proc.start([sys.executable, "-c", child, str(tmp_path)], os.environ)
    deadline = time.monotonic() + 10
    while not descendants(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    [grandchild] = descendants(pid)
    proc.kill()
    deadline = time.monotonic() + 5
    while Path(f"/proc/{grandchild}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    stat = Path(f"/proc/{grandchild}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"  # no orphan left running
    assert proc.pid_file.exists() and proc.pid() is None  # as after a crash


def test_stale_pid_file_is_cleared_and_never_signals_a_stranger(tmp_path: Path) -> None:
    proc = _proc(tmp_path)
    proc.run_dir.mkdir(parents=True)
    proc.pid_file.write_text(f"{os.getpid()}\n")  # a live process without our marker
    assert proc.pid() is None
    assert proc.clear_stale() is True
    assert proc.stop() is False  # nothing of ours was running, nothing was signalled


def _free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def test_taken_port_is_reported_with_its_holder(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
        assert f"pid {os.getpid()}" in port_holder(port)
        # Every other port is a free one, so that only the REST port can be the one reported
        # (a user's stack may be running on the default ports).
        others = dict(zip(("KAFKA_PORT", "KAFKA_CONTROLLER_PORT", "FLINK_RPC_PORT", "FLINK_BLOB_PORT"),
                          _free_ports(4), strict=True))
        settings = Settings.load(env={"AIMASS_PATHS_STATE_DIR": str(tmp_path), "AIMASS_FLINK_REST_PORT": str(port),
                                      "AIMASS_PATHS_JARS_DIR": str(Settings.load().paths.jars_dir),
                                      **{f"AIMASS_{k}": str(v) for k, v in others.items()}})
        stack = LocalStack(settings, say=lambda _: None)
        with pytest.raises(StackError, match=rf"port {port} \(Flink REST/web UI\) is already taken by pid"):
            stack.preflight()
