"""The embedded local stack: one Kafka broker and a Flink session cluster (and, when
``storage.local_port`` is set, a local S3 object store for checkpoints), up and down.

``up`` is idempotent (what runs is left alone), checks its preconditions first (Java, the
jars, free ports, stale pid files) and, if anything fails, stops what it had started itself.
``down`` stops exactly the processes whose pid files it wrote, and their process groups.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aimass.settings import PROJECT_ROOT, Settings
from aimass.stack import storage
from aimass.stack.flink import FlinkCluster
from aimass.stack.kafka import KafkaBroker
from aimass.stack.objectstore import ObjectStore
from aimass.stack.procs import ManagedProcess, StackError, port_holder, port_in_use, private_dir

log = logging.getLogger("aimass.stack")

#: How long a port may still be held by a process that has just died before it counts as taken.
PORT_RELEASE_S = 5.0

Say = Callable[[str], None]


@dataclass(frozen=True)
class ProcessStatus:
    """One row of ``aimass status``."""

    name: str
    pid: int | None
    address: str
    log_file: Path


class LocalStack:
    """Start, stop and inspect the local Kafka broker and Flink cluster."""

    def __init__(self, settings: Settings, say: Say = print) -> None:
        self.settings = settings
        self.kafka = KafkaBroker(settings)
        self.flink = FlinkCluster(settings)
        self.objectstore = ObjectStore(settings) if settings.storage.local_port else None
        self.say = say

    # -- preconditions -------------------------------------------------------------------

    def ensure_jars(self) -> None:
        """Resolve the JVM artifacts with Maven if they are missing."""
        jars = self.settings.paths.jars_dir
        if any((jars / "kafka").glob("kafka_2.13-*.jar")) and any((jars / "flink").glob("*.jar")):
            return
        if not shutil.which("java"):
            raise StackError("java not found on PATH: install a JDK 17+ (apt-get install openjdk-17-jdk-headless)")
        mvn = shutil.which("mvn")
        if not mvn:
            raise StackError(
                "mvn not found on PATH: install Maven (apt-get install maven); it resolves the Kafka and connector jars"
            )
        self.say(f"resolving JVM artifacts with Maven into {jars} ...")
        done = subprocess.run(  # noqa: S603
            [mvn, "-q", "-B", "package", f"-Djars.dir={jars}"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if done.returncode != 0:
            out = (done.stdout + done.stderr)[-3000:]
            hint = ""
            if "Could not transfer" in out or "resolve" in out or "Unknown host" in out:
                hint = " Maven Central looks unreachable: check the network or a proxy in ~/.m2/settings.xml."
            raise StackError(f"Maven could not resolve the JVM artifacts.{hint}\n{out}")

    def _check_port(self, port: int, what: str, ours: ManagedProcess, host: str = "") -> None:
        host = host or self.settings.kafka.host
        if ours.pid() is not None or not port_in_use(host, port):
            return
        # A process killed a moment ago (a TaskManager after SIGKILL) can keep its sockets for a
        # moment after its main thread is gone, while its other threads exit: wait that out.
        deadline = time.monotonic() + PORT_RELEASE_S
        while time.monotonic() < deadline:
            time.sleep(0.1)
            if not port_in_use(host, port):
                return
        raise StackError(
            f"port {port} ({what}) is already taken by {port_holder(port)}: stop that process "
            f"or choose another port with {_port_var(what)}"
        )

    def preflight(self) -> None:
        """Check the Flink address, Java, jars, stale pid files and ports before starting anything
        (and make the state folder the user's alone)."""
        self.flink.check_exposure()
        private_dir(self.settings.paths.state_dir)
        self.kafka.java()
        self.ensure_jars()
        for proc in self.processes():
            if proc.clear_stale():
                self.say(f"removed stale pid file of {proc.name} (process no longer running)")
        k, f = self.settings.kafka, self.settings.flink
        self._check_port(k.port, "Kafka", self.kafka.process, k.listen_host)
        self._check_port(k.controller_port, "Kafka controller", self.kafka.process, k.listen_host)
        if k.secure_port:
            self._check_port(k.secure_port, "Kafka SASL_SSL", self.kafka.process)
        self._check_port(f.rest_port, "Flink REST/web UI", self.flink.jobmanager)
        self._check_port(f.rpc_port, "Flink JobManager RPC", self.flink.jobmanager)
        self._check_port(f.blob_port, "Flink blob server", self.flink.jobmanager)
        if f.metrics_port:
            self._check_port(f.metrics_port, "Flink JobManager metrics", self.flink.jobmanager)
            for index in range(f.taskmanagers):
                tm = self.flink.taskmanager(index)
                self._check_port(self.flink.metrics_port(tm.name), f"Flink {tm.name} metrics", tm)
        if self.objectstore is not None:
            self.objectstore.check_ports()

    # -- up / down -------------------------------------------------------------------------

    def processes(self) -> list[ManagedProcess]:
        """Every process the stack manages, in start order."""
        store = [self.objectstore.process] if self.objectstore is not None else []
        return [*store, self.kafka.process, self.flink.jobmanager, *self.flink.taskmanagers()]

    def up(self) -> None:
        """Start whatever is not running yet and wait until all of it is healthy."""
        self.preflight()
        started: list[ManagedProcess] = []
        try:
            if self.objectstore is not None:
                if self.objectstore.process.pid() is None:
                    self.say(f"starting the object store (SeaweedFS) on {self.objectstore.endpoint} ...")
                    self.objectstore.start()
                    started.append(self.objectstore.process)
                self.objectstore.wait_healthy()
            elif self.settings.storage.is_s3:
                storage.preflight(self.settings)  # unreachable, wrong credentials: refused before anything starts
            if self.kafka.process.pid() is None:
                self.say(f"starting Kafka on {self.settings.kafka.bootstrap} ...")
                self.kafka.start()
                started.append(self.kafka.process)
            self.kafka.wait_healthy()
            created = self.kafka.ensure_topics()
            if created:
                self.say(f"created topics: {', '.join(created)}")
            if self.settings.kafka.acls:
                self.say(f"Kafka ACLs: {self.kafka.grant_acls()} granted to users job and client")
            self.flink.write_files()
            if self.flink.jobmanager.pid() is None:
                self.say(f"starting Flink JobManager ({self.settings.flink.rest_url}) ...")
                self.flink.start_jobmanager()
                started.append(self.flink.jobmanager)
            for index in range(self.settings.flink.taskmanagers):
                tm = self.flink.taskmanager(index)
                if tm.pid() is None:
                    self.say(f"starting Flink TaskManager {index} ...")
                    self.flink.start_taskmanager(index)
                    started.append(tm)
            self.flink.wait_ready(self.settings.flink.taskmanagers)
        except BaseException:
            for proc in reversed(started):
                self.say(f"stopping {proc.name} (start-up failed)")
                proc.stop(timeout_s=10)
            raise
        secure = f" (SASL_SSL {self.kafka.secure_bootstrap})" if self.settings.kafka.secure_port else ""
        self.say(
            f"stack is up: Kafka {self.settings.kafka.bootstrap}{secure}, Flink web UI {self.settings.flink.rest_url}"
        )

    def set_taskmanagers(self, count: int, timeout_s: float = 90) -> list[str]:
        """Start or stop TaskManagers until ``count`` run; returns what was done.

        Stopping one that runs tasks makes the job restart on the slots left (the adaptive
        scheduler lowers its parallelism to fit); starting one offers its slots to the job.
        """
        if count < 1:
            raise StackError("at least one TaskManager is needed: use `aimass down` to stop everything")
        if self.flink.jobmanager.pid() is None:
            raise StackError("the Flink JobManager is not running: start the stack with `aimass up`")
        done = []
        running = [tm for tm in self.flink.taskmanagers() if tm.pid() is not None]
        for tm in running[count:][::-1]:
            self.say(f"stopping {tm.name} ...")
            tm.stop()
            done.append(f"stopped {tm.name}")
        index = 0
        while len([tm for tm in self.flink.taskmanagers() if tm.pid() is not None]) < count:
            if self.flink.taskmanager(index).pid() is None:
                self.say(f"starting Flink TaskManager {index} ...")
                self.flink.start_taskmanager(index)
                done.append(f"started taskmanager-{index}")
            index += 1
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if int(self.flink.rest("/overview")["taskmanagers"]) == count:
                return done
            time.sleep(0.5)
        raise StackError(f"{count} TaskManagers did not register within {timeout_s:.0f}s; see `aimass logs jobmanager`")

    def down(self, purge: bool = False) -> list[str]:
        """Stop every process this stack started (TaskManagers, JobManager, Kafka); returns names."""
        stopped = []
        for proc in reversed(self.processes()):
            if proc.stop():
                stopped.append(proc.name)
        if purge:
            for sub in ("kafka", "flink", "checkpoints", "savepoints", "logs", "run", "objectstore"):
                shutil.rmtree(self.settings.paths.state_dir / sub, ignore_errors=True)
        return stopped

    def status(self) -> list[ProcessStatus]:
        """What runs, with pids and addresses."""
        k, f = self.settings.kafka, self.settings.flink
        addresses = {"kafka": k.bootstrap, "jobmanager": f.rest_url}
        if self.objectstore is not None:
            addresses["objectstore"] = self.objectstore.endpoint
        return [
            ProcessStatus(p.name, p.pid(), addresses.get(p.name, f.host), p.log_file) for p in self.processes()
        ]

    def log_files(self, name: str) -> list[Path]:
        """Log files of a component (``kafka``, ``jobmanager``, ``taskmanager-N``)."""
        logs = self.settings.paths.state_dir / "logs"
        if name == "kafka":
            return [logs / "kafka-server.log", logs / "kafka.out"]
        if name == "objectstore":
            return [logs / "objectstore.out"]
        if name == "jobmanager":
            return sorted(logs.glob("flink-aimass-standalonesession-*.log")) + [logs / "jobmanager.out"]
        if name.startswith("taskmanager"):
            index = name.split("-")[1] if "-" in name else "0"
            return sorted(logs.glob(f"flink-aimass-taskexecutor-{index}-*.log")) + [logs / f"{name}.out"]
        raise StackError(f"unknown component {name!r}: use kafka, jobmanager, taskmanager-N or objectstore")


def _port_var(what: str) -> str:
    return {
        "Kafka": "AIMASS_KAFKA_PORT",
        "Kafka controller": "AIMASS_KAFKA_CONTROLLER_PORT",
        "Kafka SASL_SSL": "AIMASS_KAFKA_SECURE_PORT",
        "Flink REST/web UI": "AIMASS_FLINK_REST_PORT",
        "Flink JobManager RPC": "AIMASS_FLINK_RPC_PORT",
        "Flink blob server": "AIMASS_FLINK_BLOB_PORT",
    }.get(what, "AIMASS_FLINK_METRICS_PORT")
