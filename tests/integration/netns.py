"""Hosts of their own on one machine, for the multi-host tests: a Linux bridge and one network
namespace per host, each with one address on the bridge's /24 (the test process reaches them
through the bridge's own ``.1``). Made by the test and removed at its end; nothing here routes
anywhere else, so traffic stays on those addresses and each namespace's loopback.

A host can also hide folders from its processes (a private mount namespace with an empty tmpfs
over each), as a TaskManager on another machine would not see the project's ``models/`` or
another host's state.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


class NamespaceError(RuntimeError):
    """The machine would not let the test make its hosts (no privileges, no ``ip``)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        raise NamespaceError("`ip` (iproute2) is not installed: apt-get install iproute2") from None
    if check and done.returncode != 0:
        raise NamespaceError(f"`ip {' '.join(args)}` failed: {done.stderr.strip() or done.stdout.strip()}"
                             " (network namespaces need root or CAP_NET_ADMIN and CAP_SYS_ADMIN)")
    return done


@dataclass(frozen=True)
class Host:
    """One namespace and its address."""

    namespace: str
    address: str

    def launcher(self, hide: Sequence[Path] = ()) -> tuple[str, ...]:
        """The prefix that starts a command on this host, ``hide`` folders covered by empty tmpfs."""
        base = ("ip", "netns", "exec", self.namespace)
        if not hide:
            return base
        mounts = " && ".join(f"mount -t tmpfs -o size=512m,mode=0700 aimass-hidden {shlex.quote(str(p))}"
                             for p in hide)
        return (*base, "unshare", "--mount", "--propagation", "private", "sh", "-c", f'{mounts} && exec "$@"', "sh")

    def pids(self) -> list[int]:
        """Every process in this host's network namespace."""
        done = _ip("netns", "pids", self.namespace, check=False)
        return [int(p) for p in done.stdout.split()]

    def kill_everything(self) -> list[int]:
        """SIGKILL every process of the host (a host that loses power); returns their pids."""
        pids = self.pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        return pids

    def run(self, argv: Sequence[str], hide: Sequence[Path] = (),
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a command on this host and wait for it."""
        return subprocess.run([*self.launcher(hide), *argv], capture_output=True, text=True, timeout=timeout,
                              check=False)


@dataclass
class Network:
    """A bridge ``<prefix>br`` on ``10.<a>.<b>.0/24`` and the hosts on it."""

    prefix: str
    subnet: str
    """The first three octets, e.g. ``10.231.7``."""
    hosts: dict[str, Host] = field(default_factory=dict)

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br"[:15]

    @property
    def gateway(self) -> str:
        """The test process's own address on the bridge."""
        return f"{self.subnet}.1"

    def create(self, names: Sequence[str]) -> dict[str, Host]:
        """Make the bridge and one namespace per name (addresses ``.2``, ``.3``, ...)."""
        self.remove()  # leftovers of an interrupted run
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for index, name in enumerate(names, start=2):
            host = Host(f"{self.prefix}{name}", f"{self.subnet}.{index}")
            outer, inner = f"{self.prefix}{index}a"[:15], f"{self.prefix}{index}b"[:15]
            _ip("netns", "add", host.namespace)
            self.hosts[name] = host
            _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
            _ip("link", "set", inner, "netns", host.namespace)
            _ip("link", "set", outer, "master", self.bridge)
            _ip("link", "set", outer, "up")
            for args in (("addr", "add", f"{host.address}/24", "dev", inner), ("link", "set", inner, "up"),
                         ("link", "set", "lo", "up")):
                _ip("netns", "exec", host.namespace, "ip", *args)
        return self.hosts

    def remove(self) -> None:
        """Kill what runs in the namespaces, delete them and the bridge (their veths go with them)."""
        listed = _ip("netns", "list", check=False).stdout.split()
        for namespace in [n for n in listed if n.startswith(self.prefix)]:
            Host(namespace, "").kill_everything()
            _ip("netns", "delete", namespace, check=False)
        # A namespace the kernel has not freed yet (its last sockets closing) keeps its veth pair
        # alive: delete our end of each, which takes the other end with it.
        links = _ip("-o", "link", "show", check=False).stdout.splitlines()
        for name in {line.split(":")[1].strip().split("@")[0] for line in links if ":" in line}:
            if name.startswith(self.prefix) and name != self.bridge:
                _ip("link", "delete", name, check=False)
        _ip("link", "delete", self.bridge, check=False)
        self.hosts.clear()
