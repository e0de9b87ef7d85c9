"""The local Kafka broker: KRaft combined mode, one node, from Maven Central jars.

Formatted once with ``kafka.tools.StorageTool``, started with ``kafka.Kafka``, and declared
healthy only when it answers a metadata request.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import secrets
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from aimass.settings import Settings
from aimass.stack import acls
from aimass.stack.childenv import child_env
from aimass.stack.procs import ManagedProcess, StackError, tail
from aimass.stack.tls import make_ca, make_certificate, tool, write_private

log = logging.getLogger("aimass.stack")

_QUIET = "kafka.clients", "kafka.conn", "kafka.client", "kafka.coordinator", "kafka.admin"

#: The SASL PLAIN user of the local secure listener (its password is generated).
SECURE_USER = "aimass"


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

    @property
    def tls_dir(self) -> Path:
        """Certificates and the password of the secure listener (``kafka.secure_port``)."""
        return self.home / "tls"

    @property
    def secure_bootstrap(self) -> str:
        """``host:secure_port`` of the SASL_SSL listener."""
        return f"{self.settings.kafka.host}:{self.settings.kafka.secure_port}"

    def properties(self) -> dict[str, str]:
        """The broker's ``server.properties`` (docs/CONFIGURATION.md lists the fixed ones)."""
        k = self.settings.kafka
        # With the SASL_SSL listener on, the plaintext and controller ones stay on loopback.
        listeners = [f"PLAINTEXT://{k.listen_host}:{k.port}"]
        protocols = "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
        if k.secure_port:
            listeners.append(f"SASL_SSL://{k.host}:{k.secure_port}")
            protocols += ",SASL_SSL:SASL_SSL"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{k.listen_host}:{k.controller_port}",
            "listeners": ",".join([*listeners, f"CONTROLLER://{k.listen_host}:{k.controller_port}"]),
            "advertised.listeners": ",".join(listeners),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": protocols,
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
        if k.secure_port:
            props.update(self._secure_listener_props())
        if k.acls:
            props.update(acls.broker_properties(SECURE_USER))
        return props

    def write_config(self) -> Path:
        """Write server.properties and the Log4j 2 config; returns the properties path."""
        k = self.settings.kafka
        self.home.mkdir(parents=True, exist_ok=True)
        logs = self.settings.paths.state_dir / "logs"
        props = self.properties()
        path = self.home / "server.properties"
        text = "".join(f"{key}={value}\n" for key, value in props.items())
        if k.secure_port:  # it holds the generated password: never readable by others, not even briefly
            path.unlink(missing_ok=True)
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
                f.write(text)
        else:
            path.write_text(text)
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

    # -- the secure listener ----------------------------------------------------------------

    def _secure_listener_props(self) -> dict[str, str]:
        """Broker properties of the SASL_SSL listener (SASL PLAIN, PEM keystore)."""
        self.ensure_tls()
        users = (SECURE_USER, *acls.ACL_USERS) if self.settings.kafka.acls else (SECURE_USER,)
        entries = " ".join(f'user_{user}="{self.password(user)}"' for user in users)
        prefix = "listener.name.sasl_ssl."
        return {
            f"{prefix}sasl.enabled.mechanisms": "PLAIN",
            f"{prefix}plain.sasl.jaas.config": (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {entries};"
            ),
            f"{prefix}ssl.keystore.type": "PEM",
            f"{prefix}ssl.keystore.location": str(self.tls_dir / "broker.pem"),
        }

    def ensure_tls(self) -> None:
        """Generate, once, a CA, the broker's certificate and the client password in :attr:`tls_dir`.

        The CA (``ca.pem``) is what clients trust. The broker certificate names ``localhost``,
        ``127.0.0.1`` and ``kafka.host``; ``broker.pem`` holds its unencrypted PKCS#8 key and the
        chain (readable by the owner only, as are the CA key and the password).

        Raises:
            StackError: ``openssl`` is not installed, or failed.
        """
        tls = self.tls_dir
        if (tls / "broker.pem").exists() and (tls / f"{SECURE_USER}.password").exists():
            self._ensure_passwords()
            return
        openssl = tool("openssl", "the secure Kafka listener (AIMASS_KAFKA_SECURE_PORT; or set it to 0)")
        make_ca(tls, "AI Mass local CA", openssl)
        make_certificate(tls, "broker", [self.settings.kafka.host], openssl, usage="serverAuth")
        key = (tls / "broker.key").read_text()
        if "BEGIN PRIVATE KEY" not in key:  # Kafka reads PKCS#8 keys only
            raise StackError(f"openssl wrote {tls / 'broker.key'} in a format other than PKCS#8")
        write_private(tls / "broker.pem", key + (tls / "broker.crt").read_text() + (tls / "ca.pem").read_text())
        self._ensure_passwords()

    def _ensure_passwords(self) -> None:
        """A generated password (mode 0600) for each SASL user that has none yet."""
        for user in (SECURE_USER, *acls.ACL_USERS):
            password = self.tls_dir / f"{user}.password"
            if not password.exists():
                password.touch(mode=0o600)
                password.write_text(secrets.token_urlsafe(24) + "\n")

    def password(self, user: str = SECURE_USER) -> str:
        """The generated password of SASL user ``user`` of the secure listener."""
        return (self.tls_dir / f"{user}.password").read_text().strip()

    def secure_client_properties(self, user: str = SECURE_USER) -> str:
        """``AIMASS_KAFKA_CLIENT_PROPERTIES`` of a client of the SASL_SSL listener (with ``AIMASS_KAFKA_PORT``
        set to ``kafka.secure_port``) as SASL user ``user`` (``aimass``, or with ``kafka.acls`` the
        ``job`` or ``client`` of aimass/stack/acls.py); generates the TLS files and password if needed.

        Raises:
            StackError: ``kafka.secure_port`` is 0.
        """
        if not self.settings.kafka.secure_port:
            raise StackError("the secure Kafka listener is off: set AIMASS_KAFKA_SECURE_PORT (e.g. 19094)")
        self.ensure_tls()
        return (
            "security.protocol=SASL_SSL;sasl.mechanism=PLAIN;"
            "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{user}" password="{self.password(user)}";'
            f"ssl.truststore.type=PEM;ssl.truststore.location={self.tls_dir / 'ca.pem'}"
        )

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
        cluster_id = new_cluster_id()
        argv = self._java_argv(
            "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "--config", str(props)
        )
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False,  # noqa: S603
                              env=child_env("tool"))
        if done.returncode != 0:
            raise StackError(f"formatting Kafka storage failed:\n{done.stdout}{done.stderr}")

    def start(self) -> int:
        """Format if needed and start the broker; returns its pid (does not wait for health)."""
        props = self.write_config()
        self.format_storage(props)
        env = child_env("kafka", {"KAFKA_HEAP_OPTS": ""})
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
        from aimass.kafka_config import python_client_config

        return KafkaAdminClient(
            bootstrap_servers=self.settings.kafka.bootstrap,
            request_timeout_ms=5000,
            client_id="aimass-admin",
            **python_client_config(self.settings.kafka),  # TLS/SASL when the client properties say so
        )

    def describe(self) -> dict[str, object]:
        """Cluster metadata (a metadata request); raises if the broker does not answer."""
        admin = self.admin()
        try:
            return dict(admin.describe_cluster())
        finally:
            admin.close()

    def grant_acls(self, settings: Settings | None = None) -> int:
        """Grant the ``job`` and ``client`` users their rights on the topics of ``settings``
        (default: the stack's own; another job's settings for its own topics); returns the
        number of ACLs (aimass/stack/acls.py)."""
        admin = self.admin()
        try:
            return acls.apply(settings or self.settings, admin)
        finally:
            admin.close()

    def ensure_topics(self, names: list[str] | None = None, partitions: int | None = None,
                      replication: int = 1) -> list[str]:
        """Create the stack's topics (or ``names``) if missing, with ``replication`` replicas
        each; returns those created."""
        from kafka.admin import NewTopic
        from kafka.errors import TopicAlreadyExistsError

        k = self.settings.kafka
        wanted = names or [k.requests_topic, k.results_topic, k.dead_letter_topic, k.control_topic,
                           k.control_dead_letter_topic, k.shadow_topic, k.blob_topic]
        # The control topic orders every command, so it has one partition; so does the blob
        # topic (a deploy names one offset range).
        single = {k.control_topic, k.control_dead_letter_topic, k.blob_topic}
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
                if name in (k.results_topic, k.shadow_topic):
                    # Keyed by request id: compaction turns the topic into a lookup table;
                    # delete still bounds it in time.
                    configs = {"cleanup.policy": "compact,delete", "retention.ms": str(7 * 86_400_000)}
                if name == k.control_topic:
                    # Keyed by what a command configures: the latest of each key is the routing.
                    configs = {"cleanup.policy": "compact", "retention.ms": "-1"}
                if name == k.blob_topic:
                    # Every chunk has its own key: compaction keeps them all, for good.
                    configs = {"cleanup.policy": "compact", "retention.ms": "-1", "max.message.bytes": str(2 << 20)}
                count = 1 if name in single else partitions or k.partitions
                if replication > 1:
                    configs = {**configs, "min.insync.replicas": str(replication - 1)}
                new.append(NewTopic(name, count, replication, topic_configs=configs))
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


@dataclass(frozen=True)
class ClusterNode(KafkaBroker):
    """One node (broker and controller) of a KRaft cluster of several, each with its own host,
    ports and state folder in ``settings``; replicated internal topics (``replication`` copies,
    ``min.insync.replicas`` one fewer), one cluster id for all. The multi-host tests run three."""

    node_id: int = 1
    voters: str = ""
    """``controller.quorum.voters``: ``1@host:port,2@host:port,...`` of every node."""
    cluster_id: str = ""
    replication: int = 3
    launcher: tuple[str, ...] = ()

    @property
    def process(self) -> ManagedProcess:
        """The node's process handle, started through ``launcher``."""
        state = self.settings.paths.state_dir
        return ManagedProcess("kafka", state / "run", state / "logs", marker=str(self.home), launcher=self.launcher)

    def properties(self) -> dict[str, str]:
        """A single broker's properties, with this node's id, the quorum and replicated internal topics."""
        props = super().properties()
        copies, min_isr = str(self.replication), str(max(1, self.replication - 1))
        props.update({
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.voters,
            "offsets.topic.replication.factor": copies,
            "transaction.state.log.replication.factor": copies,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": copies,
            "share.coordinator.state.topic.min.isr": min_isr,
            "default.replication.factor": copies,
            "min.insync.replicas": min_isr,
        })
        return props

    def format_storage(self, props: Path) -> None:
        """Format the log directory with the cluster's shared id (once)."""
        if (self.home / "data" / "meta.properties").exists():
            return
        argv = self._java_argv("kafka.tools.StorageTool", "format", f"--cluster-id={self.cluster_id}",
                               "--config", str(props))
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False,  # noqa: S603
                              env=child_env("tool"))
        if done.returncode != 0:
            raise StackError(f"formatting Kafka storage of node {self.node_id} failed:\n{done.stdout}{done.stderr}")


def new_cluster_id() -> str:
    """A KRaft cluster id (22 characters of URL-safe base64)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
