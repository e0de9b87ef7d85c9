"""The local Flink session cluster, run from the ``apache-flink`` wheel's own scripts.

A generated conf dir (explicit ports, pid and log dirs, adaptive scheduler, checkpoints under
the state folder) and a generated lib dir (the wheel's jars, ``flink-python`` moved in from
``opt/`` so that several thread-mode jobs can share a TaskManager, and the Kafka SQL
connector) are handed to ``jobmanager.sh``/``taskmanager.sh start-foreground`` through
``FLINK_CONF_DIR`` and ``FLINK_LIB_DIR``. TaskManagers get the venv on ``PATH`` and the
project on ``PYTHONPATH``, which thread mode (Python inside the TaskManager JVM) needs.

Disk stays bounded: each process's log4j log rolls over by size (:func:`log4j_console_properties`)
and its stdout and stderr (``<name>.out``) go through a rotating writer (:mod:`aimass.stack.outcap`),
both at ``flink.log_file_bytes`` with ``flink.log_backups`` older files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from aimass.settings import PROJECT_ROOT, FlinkSettings, Settings, is_loopback
from aimass.stack import storage
from aimass.stack.childenv import child_env
from aimass.stack.flink_tls import FlinkTls, rest_context
from aimass.stack.procs import ManagedProcess, StackError, tail
from aimass.stack.tls import write_private


def pyflink_home() -> Path:
    """The installed ``pyflink`` package directory (the Flink distribution inside the wheel)."""
    import pyflink

    return Path(pyflink.__file__).resolve().parent


@dataclass(frozen=True)
class FlinkCluster:
    """Files, processes and REST API of the local session cluster."""

    settings: Settings
    launcher: tuple[str, ...] = ()
    """A command the processes start through (:attr:`ManagedProcess.launcher`): a host of the
    multi-host tests (its network namespace)."""
    taskmanager_host: str = ""
    """The address this host's TaskManagers bind and advertise; empty: ``flink.host`` (one
    machine). On a TaskManager host of several, ``flink.host`` stays the JobManager's address."""

    @property
    def home(self) -> Path:
        """Generated conf and lib dirs live here."""
        return self.settings.paths.state_dir / "flink"

    @property
    def conf_dir(self) -> Path:
        """``FLINK_CONF_DIR``."""
        return self.home / "conf"

    @property
    def lib_dir(self) -> Path:
        """``FLINK_LIB_DIR``."""
        return self.home / "lib"

    @property
    def plugins_dir(self) -> Path:
        """``FLINK_PLUGINS_DIR``: the wheel's plugins, plus the S3 file system when storage is on S3."""
        return self.home / "plugins"

    def _proc(self, name: str) -> ManagedProcess:
        state, f = self.settings.paths.state_dir, self.settings.flink
        return ManagedProcess(
            name, state / "run", state / "logs", marker=str(self.conf_dir),
            out_max_bytes=f.log_file_bytes, out_backups=f.log_backups, launcher=self.launcher,
        )

    @property
    def jobmanager(self) -> ManagedProcess:
        """The JobManager process handle."""
        return self._proc("jobmanager")

    def taskmanager(self, index: int) -> ManagedProcess:
        """The handle of TaskManager ``index`` (0-based)."""
        return self._proc(f"taskmanager-{index}")

    def taskmanagers(self) -> list[ManagedProcess]:
        """Handles of every TaskManager with a pid file, plus the configured count."""
        run = self.settings.paths.state_dir / "run"
        found = {int(p.stem.split("-")[1]) for p in run.glob("taskmanager-*.pid")} if run.exists() else set()
        found |= set(range(self.settings.flink.taskmanagers))
        return [self.taskmanager(i) for i in sorted(found)]

    def config(self) -> dict[str, Any]:
        """The cluster configuration written to ``config.yaml``."""
        f, j, paths = self.settings.flink, self.settings.job, self.settings.paths
        venv_python = sys.executable
        return {
            "jobmanager.rpc.address": f.host,
            "jobmanager.rpc.port": f.rpc_port,
            "jobmanager.bind-host": f.host,
            "jobmanager.memory.process.size": f.jobmanager_memory,
            "jobmanager.scheduler": "adaptive",
            "jobmanager.adaptive-scheduler.resource-stabilization-timeout": "2s",
            "blob.server.port": str(f.blob_port),
            "taskmanager.host": f.host,
            "taskmanager.bind-host": f.host,
            "taskmanager.rpc.port": f.taskmanager_rpc_ports,
            "taskmanager.numberOfTaskSlots": f.slots,
            "taskmanager.memory.process.size": f.taskmanager_memory,
            "rest.address": f.host,
            "rest.bind-address": f.host,
            "rest.port": f.rest_port,
            "parallelism.default": j.parallelism,
            "pipeline.max-parallelism": j.max_parallelism,
            "execution.checkpointing.dir": self.settings.checkpoint_uri,
            "execution.checkpointing.savepoint-dir": self.settings.savepoint_uri,
            # RocksDB's working files under the state folder (not the TaskManager's /tmp), where
            # `aimass status`, the soak and `aimass down --purge` see them.
            "state.backend.rocksdb.localdir": str(paths.state_dir / "rocksdb"),
            "env.pid.dir": str(paths.state_dir / "run"),
            "env.log.dir": str(paths.state_dir / "logs"),
            "python.executable": venv_python,
            "python.client.executable": venv_python,
            "classloader.parent-first-patterns.additional": "pemja.",
            "web.cancel.enable": True,
            "web.submit.enable": False,
            # Flink's default `*` lets any web page the user opens read REST answers.
            "web.access-control-allow-origin": f.origin,
            # A killed TaskManager is noticed after two failed heartbeats (~4 s), not 50 s.
            "heartbeat.interval": 2000,
            "heartbeat.timeout": 20000,
            # The web UI, `aimass rescale` and the autoscaler read metrics at most this stale.
            "metrics.fetcher.update-interval": 2000,
            **storage.flink_config(self.settings.storage),
            **self._reporter_config(),
            **FlinkTls(self.settings).flink_config(),
        }

    def _reporter_config(self) -> dict[str, Any]:
        """Flink's Prometheus reporter (its port is set per process, see :meth:`metrics_port`)."""
        if not self.settings.flink.metrics_port:
            return {}
        return {
            "metrics.reporter.prom.factory.class": "org.apache.flink.metrics.prometheus.PrometheusReporterFactory",
            "metrics.reporter.prom.port": str(self.settings.flink.metrics_port),
            "metrics.reporter.prom.interval": "5 s",
        }

    def metrics_port(self, process: str) -> int:
        """The Prometheus port of ``jobmanager`` or ``taskmanager-N`` (0: no reporter)."""
        base = self.settings.flink.metrics_port
        if not base:
            return 0
        return base if process == "jobmanager" else base + 1 + int(process.split("-")[1])

    def metrics_urls(self) -> dict[str, str]:
        """``/metrics`` URLs of the running processes, by name (the reporter listens on every
        interface: Flink's has no bind address; the URL names the process's own address)."""
        urls = {}
        for proc in [self.jobmanager, *self.taskmanagers()]:
            port = self.metrics_port(proc.name)
            host = self.settings.flink.host
            if proc.name != "jobmanager" and self.taskmanager_host:
                host = self.taskmanager_host
            if port and proc.pid() is not None:
                urls[proc.name] = f"http://{host}:{port}/metrics"
        return urls

    def write_files(self) -> None:
        """Generate the conf dir and the lib dir (symlinks into the wheel + the connector)."""
        dist = pyflink_home()
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        # The `flink` client's log4j-cli.properties overwrites its log at each run: as it is.
        for name in ("log4j-cli.properties", "log4j.properties"):
            shutil.copyfile(dist / "conf" / name, self.conf_dir / name)
        # What `jobmanager.sh`/`taskmanager.sh start-foreground` (flink-console.sh) read.
        (self.conf_dir / "log4j-console.properties").write_text(log4j_console_properties(self.settings.flink))
        # The wheel's defaults (JVM --add-opens for Java 17, failover strategy), then ours.
        defaults = _flatten(yaml.safe_load((dist / "conf" / "config.yaml").read_text()) or {})
        config = {**defaults, **self.config()}
        # Owner-only: with flink.ssl it holds the stores' password.
        write_private(self.conf_dir / "config.yaml", yaml.safe_dump(config, sort_keys=True))
        connectors = sorted((self.settings.paths.jars_dir / "flink").glob("flink-sql-connector-kafka-*.jar"))
        if not connectors:
            raise StackError(
                f"Kafka connector jar missing in {self.settings.paths.jars_dir / 'flink'}: "
                "run `make jars` (Maven resolves it)"
            )
        if self.lib_dir.exists():
            shutil.rmtree(self.lib_dir)
        self.lib_dir.mkdir(parents=True)
        jars = [*(dist / "lib").glob("*.jar"), *(dist / "opt").glob("flink-python-*.jar"), *connectors]
        for jar in jars:
            (self.lib_dir / jar.name).symlink_to(jar)
        self._write_plugins(dist)

    def _write_plugins(self, dist: Path) -> None:
        """Each plugin in a folder of its own (Flink loads each with its own class loader): the
        wheel's, and Flink's S3 file system (resolved by pom.xml) when checkpoints go to S3."""
        if self.plugins_dir.exists():
            shutil.rmtree(self.plugins_dir)
        self.plugins_dir.mkdir(parents=True)
        folders = [f for f in sorted((dist / "plugins").glob("*")) if f.is_dir()]
        if self.settings.storage.is_s3:
            s3 = self.settings.paths.jars_dir / "flink-plugins" / "s3-fs-hadoop"
            if not any(s3.glob("flink-s3-fs-hadoop-*.jar")):
                raise StackError(f"Flink's S3 file system plugin is missing in {s3}: run `make jars` "
                                 "(Maven resolves it)")
            folders.append(s3)
        # Real folders with links to the jars: Flink's plugin finder does not follow a linked folder.
        for folder in folders:
            (self.plugins_dir / folder.name).mkdir()
            for jar in folder.glob("*.jar"):
                (self.plugins_dir / folder.name / jar.name).symlink_to(jar.resolve())

    def env(self, client: bool = False) -> dict[str, str]:
        """Environment of the JobManager and TaskManager scripts or, with ``client``, of the
        ``flink`` client: an allow-list (:mod:`aimass.stack.childenv`), not ours. Only the client
        gets the ``AIMASS_*`` settings (it builds the job from them; the job's operators carry
        theirs in the job graph); only the cluster's processes the AWS variables, when
        checkpoints go to object storage."""
        venv_bin = str(Path(sys.executable).parent)
        state = self.settings.paths.state_dir
        own = {
            **(self.settings.as_env() if client else {}),
            "FLINK_CONF_DIR": str(self.conf_dir),
            "FLINK_LIB_DIR": str(self.lib_dir),
            "FLINK_PLUGINS_DIR": str(self.plugins_dir),
            "FLINK_PID_DIR": str(state / "run"),
            "FLINK_LOG_DIR": str(state / "logs"),
            "FLINK_IDENT_STRING": "aimass",
            "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "VIRTUAL_ENV": str(Path(sys.executable).parent.parent),
            "PYTHONPATH": str(PROJECT_ROOT),
            "PYFLINK_PYTHON": sys.executable,
        }
        if client:
            return child_env("flink-client", own)
        return child_env("flink", own, object_storage=self.settings.storage.is_s3)

    def script(self, name: str) -> str:
        """Path of a script in the wheel's ``bin/``."""
        return str(pyflink_home() / "bin" / name)

    def check_exposure(self) -> None:
        """Refuse to start Flink processes that would listen off loopback unprotected.

        Raises:
            StackError: ``flink.host`` (or this host's TaskManager address) is not loopback, and
                neither ``flink.ssl`` nor ``flink.unsafe_expose`` is set.
        """
        f = self.settings.flink
        exposed = [h for h in (f.host, self.taskmanager_host) if h and not is_loopback(h)]
        if not exposed or f.ssl or f.unsafe_expose:
            return
        raise StackError(
            f"refusing to start Flink on {', '.join(exposed)} (not loopback): whoever reaches its REST "
            f"port {f.rest_port} can run any code as this user (POST /jobs takes a jar whatever "
            "web.submit.enable says), and its RPC and blob ports have no authentication. Set "
            "AIMASS_FLINK_SSL=true (mutual TLS on every endpoint), or AIMASS_FLINK_UNSAFE_EXPOSE=true on a "
            "network where every peer is trusted, or keep AIMASS_FLINK_HOST=127.0.0.1"
        )

    def start_jobmanager(self) -> int:
        """Start the JobManager (REST API and web UI included)."""
        self.check_exposure()
        argv = [self.script("jobmanager.sh"), "start-foreground"]
        if self.settings.flink.metrics_port:
            argv += ["-D", f"metrics.reporter.prom.port={self.metrics_port('jobmanager')}"]
        return self.jobmanager.start(argv, self.env())

    def start_taskmanager(self, index: int) -> int:
        """Start TaskManager ``index`` under a fresh resource id (so readiness can tell it from a
        dead predecessor still registered until its heartbeat times out), and note which
        project code it will load."""
        self.check_exposure()
        resource_id = f"taskmanager-{index}-{uuid.uuid4().hex[:8]}"
        argv = [self.script("taskmanager.sh"), "start-foreground", "-D", f"taskmanager.resource-id={resource_id}"]
        if self.settings.flink.metrics_port:
            argv += ["-D", f"metrics.reporter.prom.port={self.metrics_port(f'taskmanager-{index}')}"]
        if self.taskmanager_host:
            argv += ["-D", f"taskmanager.host={self.taskmanager_host}",
                     "-D", f"taskmanager.bind-host={self.taskmanager_host}"]
        pid = self.taskmanager(index).start(argv, self.env())
        self._code_file(index).write_text(code_fingerprint())
        self._resource_file(index).write_text(resource_id)
        return pid

    def _resource_file(self, index: int) -> Path:
        return self.settings.paths.state_dir / "run" / f"taskmanager-{index}.resource-id"

    def live_resource_ids(self) -> set[str] | None:
        """Resource ids of the TaskManager processes running now (None when one was started
        without a recorded id, by an older version: readiness then counts registrations)."""
        ids = set()
        for tm in self.taskmanagers():
            if tm.pid() is None:
                continue
            path = self._resource_file(int(tm.name.split("-")[1]))
            if not path.exists():
                return None
            ids.add(path.read_text().strip())
        return ids

    def _code_file(self, index: int) -> Path:
        return self.settings.paths.state_dir / "run" / f"taskmanager-{index}.code"

    def stale_taskmanagers(self) -> list[int]:
        """Running TaskManagers started before the project's Python code last changed.

        In thread mode a TaskManager's interpreter keeps every module it imported for its
        whole life, across jobs: a job submitted after a code change would unpickle its
        functions against the old modules (and fail, or silently run old code).
        """
        current = code_fingerprint()
        stale = []
        for tm in self.taskmanagers():
            index = int(tm.name.split("-")[1])
            code = self._code_file(index)
            if tm.pid() is not None and code.exists() and code.read_text() != current:
                stale.append(index)
        return stale

    def rest(self, path: str, method: str = "GET", body: Any = None, timeout: float = 10.0) -> Any:
        """Call the REST API; returns the decoded JSON body."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - always http://host:port from settings
            self.settings.flink.rest_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        context = rest_context(self.settings)  # with flink.ssl: the cluster's CA and client certificate
        with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:  # noqa: S310 - from settings
            raw = resp.read()
        return json.loads(raw) if raw else None

    def wait_ready(self, taskmanagers: int) -> None:
        """Block until the REST API answers and ``taskmanagers`` TaskManagers are registered,
        each of them a process running now (not a dead one awaiting its heartbeat timeout)."""
        deadline = time.monotonic() + self.settings.flink.start_timeout_s
        registered = 0
        while time.monotonic() < deadline:
            for proc in [self.jobmanager, *self.taskmanagers()]:
                if proc.exited_early():
                    raise StackError(
                        f"Flink {proc.name} exited during start-up; last lines of {proc.log_file}:\n"
                        f"{tail(proc.log_file)}"
                    )
            try:
                listed = {tm["id"] for tm in self.rest("/taskmanagers", timeout=2)["taskmanagers"]}
                live = self.live_resource_ids()
                # A TaskManager killed a moment ago stays registered until its heartbeat times
                # out: count only the registrations of the processes running now.
                registered = len(listed) if live is None else len(listed & live)
                if registered >= taskmanagers and (live is None or live <= listed):
                    return
            except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError):
                pass
            time.sleep(0.5)
        raise StackError(
            f"Flink did not become ready at {self.settings.flink.rest_url} within "
            f"{self.settings.flink.start_timeout_s:.0f}s ({registered}/{taskmanagers} TaskManagers "
            "registered); see `aimass logs jobmanager`. Raise AIMASS_FLINK_START_TIMEOUT_S on a slow machine."
        )

    def jobs(self) -> list[dict[str, Any]]:
        """Jobs of the cluster (id, name, state), newest first."""
        overview = self.rest("/jobs/overview")["jobs"]
        return sorted(overview, key=lambda j: j.get("start-time", 0), reverse=True)

    def running_job(self, name: str) -> dict[str, Any] | None:
        """The running (or restarting/created) job named ``name``, if any."""
        for job in self.jobs():
            if job["name"] == name and job["state"] in ("RUNNING", "CREATED", "RESTARTING", "INITIALIZING"):
                return job
        return None

    def flink_cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run the wheel's ``flink`` command-line client against this cluster."""
        argv = [self.script("flink"), *args]
        return subprocess.run(  # noqa: S603 - argv is built by the project
            argv, env=self.env(client=True), capture_output=True, text=True, timeout=timeout, check=False,
            cwd=PROJECT_ROOT,
        )


def log4j_console_properties(flink: FlinkSettings) -> str:
    """The log4j 2 configuration of the JobManager and the TaskManagers.

    The wheel's ``log4j-console.properties`` with three changes: the rolling file rolls over
    at ``flink.log_file_bytes`` and keeps ``flink.log_backups`` older files (the wheel: 100 MB,
    10 of them, per process); the console appender (stdout, that is the ``.out`` file) takes
    warnings and errors only, where the wheel copies every line of the log into it; and one
    harmless warning that Flink logs at every checkpoint is dropped (see the comment inside).
    """
    return f"""\
# Generated by aimass/stack/flink.py for the local stack's JobManager and TaskManagers.
monitorInterval = 30

rootLogger.level = ${{env:ROOT_LOG_LEVEL:-INFO}}
rootLogger.appenderRef.console.ref = ConsoleAppender
rootLogger.appenderRef.rolling.ref = RollingFileAppender

# Libraries kept at INFO whatever the root level (as in Flink's own file).
logger.pekko.name = org.apache.pekko
logger.pekko.level = INFO
logger.kafka.name = org.apache.kafka
logger.kafka.level = INFO
logger.hadoop.name = org.apache.hadoop
logger.hadoop.level = INFO
logger.zookeeper.name = org.apache.zookeeper
logger.zookeeper.level = INFO
logger.shaded_zookeeper.name = org.apache.flink.shaded.zookeeper3
logger.shaded_zookeeper.level = INFO
# Irrelevant (wrong) warnings from the Netty channel handler, off in Flink's own file too.
logger.netty.name = org.jboss.netty.channel.DefaultChannelPipeline
logger.netty.level = OFF

# Flink 2.2's sink CommitterOperator re-registers its 'pendingCommittables' gauge at every
# checkpoint (snapshotState -> CommittableCollector.copy(), whose constructor calls
# SinkCommitterMetricGroup.setCurrentPendingCommittablesGauge), so the metric group warns once
# per checkpoint and per sink (results and dead letters: 2 lines a second at 1 s checkpoints):
#   WARN org.apache.flink.metrics.MetricGroup - Name collision: Group already contains a Metric
#   with the name 'pendingCommittables'. Metric will not be reported.[..., results[5]: Committer, 0]
# Harmless: on a collision the metric group keeps the gauge it has, the one of the operator's
# own collector (registered in setup()), which stays correct; the copy only goes into the
# checkpoint. Only this message is dropped (a filter, not a level): any other name collision
# or warning of the metric system is still logged.
logger.pending_committables.name = org.apache.flink.metrics.MetricGroup
logger.pending_committables.level = ${{env:ROOT_LOG_LEVEL:-INFO}}
logger.pending_committables.filter.collision.type = RegexFilter
logger.pending_committables.filter.collision.regex = Name collision: .* the name 'pendingCommittables'[.] .*
logger.pending_committables.filter.collision.onMatch = DENY
logger.pending_committables.filter.collision.onMismatch = NEUTRAL

# stdout (the process's .out file, capped by aimass/stack/outcap.py): warnings and errors only,
# so that a failed start shows its reason there; the full story is in the rolling file.
appender.console.name = ConsoleAppender
appender.console.type = CONSOLE
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{{yyyy-MM-dd HH:mm:ss,SSS}} %-5p %-60c %x - %m%n
appender.console.filter.threshold.type = ThresholdFilter
appender.console.filter.threshold.level = ${{sys:console.log.level:-WARN}}

# The log file, rolled over by size and at each start, a bounded number of older files kept.
appender.rolling.name = RollingFileAppender
appender.rolling.type = RollingFile
appender.rolling.append = true
appender.rolling.fileName = ${{sys:log.file}}
appender.rolling.filePattern = ${{sys:log.file}}.%i
appender.rolling.layout.type = PatternLayout
appender.rolling.layout.pattern = %d{{yyyy-MM-dd HH:mm:ss,SSS}} %-5p %-60c %x - %m%n
appender.rolling.policies.type = Policies
appender.rolling.policies.size.type = SizeBasedTriggeringPolicy
appender.rolling.policies.size.size = {flink.log_file_bytes}
appender.rolling.policies.startup.type = OnStartupTriggeringPolicy
appender.rolling.strategy.type = DefaultRolloverStrategy
appender.rolling.strategy.max = {flink.log_backups}
"""


def code_fingerprint() -> str:
    """A digest of the project's Python sources (path, size, modification time of each)."""
    digest = hashlib.sha256()
    for folder in ("aimass", "udfs", "flink_jobs"):
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            stat = path.stat()
            digest.update(f"{path.relative_to(PROJECT_ROOT)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
