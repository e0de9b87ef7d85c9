"""The local Kafka broker: KRaft combined mode, one node, from Maven Central jars.

Formatted once with ``kafka.tools.StorageTool``, started with ``kafka.Kafka``, and declared
healthy only when it answers a metadata request.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from aimass.settings import Settings
from aimass.stack.procs import ManagedProcess, StackError, tail

log = logging.getLogger("aimass.stack")

_QUIET = "kafka.clients", "kafka.conn", "kafka.client", "kafka.coordinator", "kafka.admin"


@dataclass(frozen=True)
class KafkaBroker:
    """Files and process of the local broker."""

    settings: Settings

    @property
    def home(self) -> Path:
        """Broker configuration and data live here."""
        return self.settings.paths.state_dir / "kafka"

    @property
    def jars(self) -> Path:
        """Broker jars resolved by Maven."""
        return self.settings.paths.jars_dir / "kafka"

    @property
    def process(self) -> ManagedProcess:
        """The broker's process handle."""
        state = self.settings.paths.state_dir
        return ManagedProcess("kafka", state / "run", state / "logs", marker=str(self.home))

    def java(self) -> str:
        """Path of the ``java`` binary, or a StackError that says how to get one."""
        found = shutil.which("java")
        if not found:
            raise StackError("java not found on PATH: install a JDK 17+ (apt-get install openjdk-17-jdk-headless)")
        return found

    def write_config(self) -> Path:
        """Write server.properties and the Log4j 2 config; returns the properties path."""
        k = self.settings.kafka
        self.home.mkdir(parents=True, exist_ok=True)
        logs = self.settings.paths.state_dir / "logs"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{k.host}:{k.controller_port}",
            "listeners": f"PLAINTEXT://{k.host}:{k.port},CONTROLLER://{k.host}:{k.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{k.host}:{k.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.home / "data"),
            "num.partitions": str(k.partitions),
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "transaction.max.timeout.ms": str(k.transaction_max_timeout_ms),
            "log.segment.bytes": str(64 * 1024 * 1024),
            "message.max.bytes": str(self.settings.job.output_record_limit),
        }
        path = self.home / "server.properties"
        path.write_text("".join(f"{key}={value}\n" for key, value in props.items()))
        log4j = self.home / "log4j2.properties"
        log4j.write_text(
            "status = warn\n"
            "appender.file.type = File\n"
            "appender.file.name = file\n"
            f"appender.file.fileName = {logs / 'kafka-server.log'}\n"
            "appender.file.layout.type = PatternLayout\n"
            "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = INFO\n"
            "rootLogger.appenderRef.file.ref = file\n"
            "logger.state.name = state.change.logger\n"
            "logger.state.level = WARN\n"
        )
        return path

    def _java_argv(self, main: str, *args: str) -> list[str]:
        if not any(self.jars.glob("kafka_2.13-*.jar")):
            raise StackError(f"Kafka jars missing in {self.jars}: run `make jars` (Maven resolves them)")
        return [
            self.java(),
            f"-Xmx{self.settings.kafka.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            f"-Daimass.home={self.home}",
            "-cp",
            f"{self.jars}/*",
            main,
            *args,
        ]

    def format_storage(self, props: Path) -> None:
        """Format the KRaft log directory once (a formatted one is kept, with its data)."""
        if (self.home / "data" / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        argv = self._java_argv(
            "kafka.tools.StorageTool", "format", "--cluster-id", cluster_id, "--config", str(props)
        )
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
        if done.returncode != 0:
            raise StackError(f"formatting Kafka storage failed:\n{done.stdout}{done.stderr}")

    def start(self) -> int:
        """Format if needed and start the broker; returns its pid (does not wait for health)."""
        props = self.write_config()
        self.format_storage(props)
        env = {**os.environ, "KAFKA_HEAP_OPTS": ""}
        return self.process.start(self._java_argv("kafka.Kafka", str(props)), env)

    def wait_healthy(self) -> None:
        """Block until the broker answers a metadata request, or raise with its log's tail."""
        deadline = time.monotonic() + self.settings.kafka.start_timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.pid() is None:
                raise StackError(
                    "Kafka exited during start-up; last lines of "
                    f"{self.process.log_file}:\n{tail(self.process.log_file)}\n"
                    f"{tail(self.settings.paths.state_dir / 'logs' / 'kafka-server.log')}"
                )
            try:
                self.describe()
                return
            except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                last = str(exc) or type(exc).__name__
            time.sleep(0.5)
        raise StackError(
            f"Kafka did not answer a metadata request on {self.settings.kafka.bootstrap} within "
            f"{self.settings.kafka.start_timeout_s:.0f}s ({last}); see `aimass logs kafka`. "
            "Raise AIMASS_KAFKA_START_TIMEOUT_S on a slow machine."
        )

    def admin(self):  # type: ignore[no-untyped-def]
        """A kafka-python admin client on the local broker (caller closes it)."""
        from kafka import KafkaAdminClient

        for name in _QUIET:
            logging.getLogger(name).setLevel(logging.ERROR)
        return KafkaAdminClient(
            bootstrap_servers=self.settings.kafka.bootstrap,
            request_timeout_ms=5000,
            client_id="aimass-admin",
        )

    def describe(self) -> dict[str, object]:
        """Cluster metadata (a metadata request); raises if the broker does not answer."""
        admin = self.admin()
        try:
            return dict(admin.describe_cluster())
        finally:
            admin.close()

    def ensure_topics(self, names: list[str] | None = None, partitions: int | None = None) -> list[str]:
        """Create the stack's topics (or ``names``) if missing; returns those created."""
        from kafka.admin import NewTopic
        from kafka.errors import TopicAlreadyExistsError

        k = self.settings.kafka
        wanted = names or [k.requests_topic, k.results_topic, k.dead_letter_topic]
        admin = self.admin()
        try:
            existing = set(admin.list_topics())
            new = []
            for name in wanted:
                if name in existing:
                    continue
                configs = {}
                if name == k.requests_topic:
                    # Refuse far-too-big requests at the broker; the job dead-letters the rest
                    # (a dead letter of any accepted request fits the output topics).
                    configs = {"max.message.bytes": str(self.settings.job.request_record_limit)}
                if name == k.results_topic:
                    # Keyed by request id: compaction turns the topic into a lookup table;
                    # delete still bounds it in time.
                    configs = {"cleanup.policy": "compact,delete", "retention.ms": str(7 * 86_400_000)}
                new.append(NewTopic(name, partitions or k.partitions, 1, topic_configs=configs))
            if new:
                with contextlib.suppress(TopicAlreadyExistsError):  # created meanwhile
                    admin.create_topics(new)
            return [t.name for t in new]
        finally:
            admin.close()

    def topic_lag(self, group: str) -> list[tuple[str, int, int | None]]:
        """Per topic of the stack: (topic, end offset sum, lag of ``group`` or None)."""
        from kafka import KafkaConsumer, TopicPartition

        k = self.settings.kafka
        admin = self.admin()
        consumer = KafkaConsumer(bootstrap_servers=k.bootstrap, request_timeout_ms=5000)
        try:
            committed = admin.list_group_offsets(group)
            if group in committed:  # kafka-python 3 answers {group: {partition: offset}}
                committed = committed[group]
            rows = []
            for topic in (k.requests_topic, k.results_topic, k.dead_letter_topic):
                parts = consumer.partitions_for_topic(topic) or set()
                tps = [TopicPartition(topic, p) for p in parts]
                ends = consumer.end_offsets(tps) if tps else {}
                total = sum(ends.values())
                lag: int | None = None
                if topic == k.requests_topic and committed:
                    lag = sum(ends[tp] - (committed[tp].offset if tp in committed else 0) for tp in tps)
                rows.append((topic, total, lag))
            return rows
        finally:
            consumer.close()
            admin.close()
