"""A local S3-compatible object store for checkpoints and savepoints: SeaweedFS (``weed mini``),
built from the Go module proxy by ``make seaweedfs`` into ``.state/bin/weed``.

Why SeaweedFS: it is Apache-2.0, builds from the Go module proxy (MinIO's server is AGPL, and
the Python S3 servers are mocks), serves S3 with real signature checks (wrong credentials are
refused as on AWS) and runs as one process. It starts when ``storage.local_port`` is set,
before Flink, with every port explicit (``local_port`` to ``local_port + 9``) and bound to the
stack's host; its one identity takes the ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` of the
environment, the same the Flink processes use, written to a 0600 file and never printed.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from aimass.settings import PROJECT_ROOT, Settings
from aimass.stack import storage
from aimass.stack.childenv import child_env
from aimass.stack.procs import ManagedProcess, StackError, port_holder, port_in_use, tail

#: Where ``make seaweedfs`` puts the binary (shared by every isolated stack, like the jars).
WEED_BIN = PROJECT_ROOT / ".state" / "bin" / "weed"
#: Ports of ``weed mini`` after ``storage.local_port`` (the S3 API itself).
PORT_NAMES = ("s3.port.grpc", "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
              "filer.port", "filer.port.grpc", "admin.port", "admin.port.grpc")


@dataclass(frozen=True)
class ObjectStore:
    """The local SeaweedFS process of a stack."""

    settings: Settings
    launcher: tuple[str, ...] = ()
    """A command it starts through (a host of the multi-host tests)."""

    @property
    def home(self) -> Path:
        """Data, the S3 identity file."""
        return self.settings.paths.state_dir / "objectstore"

    @property
    def process(self) -> ManagedProcess:
        """Its handle (pid file, log)."""
        state = self.settings.paths.state_dir
        return ManagedProcess("objectstore", state / "run", state / "logs", marker=str(self.home / "data"),
                              launcher=self.launcher)

    @property
    def endpoint(self) -> str:
        """The S3 API's URL."""
        return f"http://{self.settings.kafka.host}:{self.settings.storage.local_port}"

    def ports(self) -> dict[str, int]:
        """Every port it listens on, by flag."""
        base = self.settings.storage.local_port
        return {"s3.port": base, **{name: base + 1 + i for i, name in enumerate(PORT_NAMES)}}

    def check_ports(self) -> None:
        """Refuse to start over a port someone else holds."""
        if self.process.pid() is not None:
            return
        for flag, port in self.ports().items():
            if port_in_use(self.settings.kafka.host, port):
                raise StackError(
                    f"port {port} (object store {flag}) is already taken by {port_holder(port)}: stop that "
                    "process or move the object store's ports with AIMASS_STORAGE_LOCAL_PORT"
                )

    def _write_identity(self) -> Path:
        key, secret = os.environ.get("AWS_ACCESS_KEY_ID", ""), os.environ.get("AWS_SECRET_ACCESS_KEY", "")
        if not key or not secret:
            raise StackError(
                "the local object store (AIMASS_STORAGE_LOCAL_PORT) takes its one identity from "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: set both (any values; Flink uses the same)"
            )
        identity = {"identities": [{"name": "aimass", "credentials": [{"accessKey": key, "secretKey": secret}],
                                    "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
        path = self.home / "s3.json"
        self.home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(identity, out)
        return path

    def argv(self, identity: Path) -> list[str]:
        """The ``weed mini`` command line: explicit ports, bound to the stack's host, extras off."""
        if not WEED_BIN.is_file():
            raise StackError(f"SeaweedFS is not built ({WEED_BIN} missing): run `make seaweedfs` (Go, about 6 min)")
        host = self.settings.kafka.host
        bucket, _ = storage.bucket_and_prefix(self.settings.storage.uri)
        return [
            str(WEED_BIN), "mini", f"-dir={self.home / 'data'}", f"-ip={host}", f"-ip.bind={host}",
            *(f"-{flag}={port}" for flag, port in self.ports().items()),
            "-admin.ui=false", "-admin.port.legacy=0", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=64", f"-s3.config={identity}", *([f"-bucket={bucket}"] if bucket else []),
        ]

    def start(self) -> int:
        """Start it (does not wait)."""
        identity = self._write_identity()
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        return self.process.start(self.argv(identity), child_env("objectstore"), cwd=self.home)

    def wait_healthy(self, timeout_s: float = 60.0) -> None:
        """Block until an object can be written and read back under ``storage.uri``."""
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.pid() is None:
                raise StackError(f"the object store exited during start-up; last lines of "
                                 f"{self.process.log_file}:\n{tail(self.process.log_file)}")
            try:
                storage.preflight(self.settings, timeout_s=2.0)
                return
            except storage.CredentialsRefused:
                raise
            except StackError as exc:
                last = str(exc)
            time.sleep(0.5)
        raise StackError(f"the object store at {self.endpoint} did not answer within {timeout_s:.0f}s: {last}")
