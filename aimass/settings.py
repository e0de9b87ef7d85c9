"""Typed, frozen settings from one place.

Every knob of AI Mass is a field below, with its default and a docstring. Each can be set from
the environment as ``AIMASS_<SECTION>_<FIELD>`` (for example ``AIMASS_FLINK_REST_PORT=8082``,
``AIMASS_JOB_DELIVERY=at-least-once``) or, for the job, with ``--set section.field=value``.
No other module reads the environment.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ENV_PREFIX = "AIMASS_"
#: Settings that are gone, and what to set instead (a variable left set names the fix, never
#: silently does nothing).
RETIRED = {
    **{f"job.{name}": f"the engine's knobs have their own section: set AIMASS_ENGINE_{name.upper()}"
       for name in ("use_gpu", "intra_op_threads", "model_cache_dir", "model_load_timeout_s")},
    "gateway.max_payload_bytes": "the gateway takes the requests the job takes: set AIMASS_JOB_MAX_PAYLOAD_BYTES",
}
PROJECT_ROOT = Path(__file__).resolve().parents[1]

Delivery = Literal["exactly-once", "at-least-once"]
StateBackend = Literal["hashmap", "rocksdb"]
ScaleStep = Literal["one", "double"]


#: Kafka client properties the job derives from other settings.
_JOB_OWNED_KAFKA_PROPERTIES = frozenset({
    "bootstrap.servers", "group.id", "isolation.level", "transaction.timeout.ms", "max.request.size",
    "transactional.id", "enable.idempotence", "key.serializer", "value.serializer",
})


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the variable to fix."""


@dataclass(frozen=True)
class PathSettings:
    """Where things live."""

    state_dir: Path = PROJECT_ROOT / ".state"
    """Everything a running stack writes: data, logs, pid files, checkpoints, savepoints."""
    models_dir: Path = PROJECT_ROOT / "models"
    """The model repository: ``<models_dir>/<name>/<version>/model.onnx`` + ``model.json``."""
    schemas_dir: Path = PROJECT_ROOT / "schemas"
    """Avro schemas of the data contract."""
    jars_dir: Path = PROJECT_ROOT / ".state" / "jars"
    """JVM artifacts resolved by Maven from ``pom.xml`` (``kafka/`` and ``flink/``)."""


@dataclass(frozen=True)
class KafkaSettings:
    """The local Kafka broker (KRaft, combined broker and controller) and the topics."""

    host: str = "127.0.0.1"
    """Address the broker listens on and advertises."""
    port: int = 19092
    """Client listener port (not 9092, to keep clear of any other Kafka on the machine)."""
    controller_port: int = 19093
    """KRaft controller listener port."""
    secure_port: int = 0
    """Port of an extra ``SASL_SSL`` listener of the local broker (SASL PLAIN over TLS, with a
    certificate and a password generated on first start into ``<state_dir>/kafka/tls/``), for
    trying the secure settings locally; 0: none. ``aimass`` itself keeps using ``port``; point
    clients at it with ``AIMASS_KAFKA_PORT`` and ``AIMASS_KAFKA_CLIENT_PROPERTIES`` (see
    docs/SECURITY.md)."""
    acls: bool = False
    """With the ``SASL_SSL`` listener on (``secure_port``): the local broker authorizes
    (``StandardAuthorizer``, nothing allowed without an ACL) and ``aimass up`` grants two more
    SASL users their least rights: ``job`` reads the requests, control and blob topics and writes
    the results, dead-letter, shadow, control and blob topics (and its transactional ids and
    group); ``client`` writes requests and reads results and dead letters, and nothing else: it
    cannot forge a result. ``aimass`` and the loopback PLAINTEXT listener (the stack's own administration) stay
    super users. docs/SECURITY.md, "Kafka ACLs"."""
    heap: str = "512m"
    """Broker JVM heap (-Xmx)."""
    requests_topic: str = "aimass.requests"
    """Topic clients produce inference requests to."""
    results_topic: str = "aimass.results"
    """Topic the job writes results to, keyed by request id (compacted)."""
    dead_letter_topic: str = "aimass.dead-letters"
    """Topic for records the job could not serve."""
    control_topic: str = "aimass.control"
    """The control topic (one partition, compacted): deploys, aliases, splits, shadows
    (docs/CONTROL.md)."""
    control_dead_letter_topic: str = "aimass.control-dead-letters"
    """Control commands the job refused, with why."""
    shadow_topic: str = "aimass.shadow-results"
    """Results of shadow versions (never on the results topic), keyed by request id."""
    blob_topic: str = "aimass.model-blobs"
    """Model bytes in chunks, written by ``aimass deploy`` (one partition, compacted)."""
    partitions: int = 4
    """Partitions of each topic created by ``aimass up``."""
    transaction_max_timeout_ms: int = 900_000
    """Broker ``transaction.max.timeout.ms``; the job's transaction timeout must not exceed it."""
    start_timeout_s: float = 60.0
    """How long ``up`` waits for the broker to answer a metadata request."""
    client_properties: str = field(default="", repr=False)
    """Extra Kafka client properties, ``key=value`` pairs separated by ``;``: the way to reach a
    broker with TLS or SASL, e.g. ``security.protocol=SASL_SSL;sasl.mechanism=PLAIN;
    sasl.jaas.config=...;ssl.truststore.type=PEM;ssl.truststore.location=/path/ca.pem``. The
    job passes them to its source and sinks as the connector's ``properties.<key>`` (with Kafka
    class names rewritten to the connector's shaded ones); the Python clients (client library,
    gateway, autoscaler) map the security ones to kafka-python arguments and refuse what
    kafka-python cannot do. See aimass/kafka_config.py and docs/SECURITY.md. Hidden from
    printed settings (it may hold credentials)."""

    client_properties_file: Path | None = None
    """More client properties from a file, one ``key=value`` a line (``#`` comments; a line's
    ``;`` is part of its value, as a JAAS configuration's is), read before ``client_properties``:
    keeps a password out of the environment, which every child process of a shell sees. Not
    readable by others (chmod 600). Every host that runs the job's Python or a client reads it."""

    bootstrap_servers: str = ""
    """Brokers the clients and the job connect to, ``host:port`` pairs separated by commas (a
    Kafka cluster, e.g. ``kafka-0:9092,kafka-1:9092,kafka-2:9092``). Empty: ``host:port``, the
    local stack's own broker. ``aimass up`` still starts (and checks) the broker at ``host:port``;
    set this when the brokers run elsewhere (several hosts, Kubernetes)."""

    @property
    def listen_host(self) -> str:
        """Address of the local broker's PLAINTEXT and controller listeners: ``host``, but loopback
        when the ``SASL_SSL`` listener is on and ``host`` is not (so that nobody elsewhere goes
        round the password and TLS through the plaintext one)."""
        if self.secure_port and self.port != self.secure_port and not is_loopback(self.host):
            return "127.0.0.1"
        return self.host

    @property
    def bootstrap(self) -> str:
        """The bootstrap servers for clients: ``bootstrap_servers``, else ``listen_host:port``."""
        return self.bootstrap_servers or f"{self.listen_host}:{self.port}"

    def client_property_pairs(self) -> list[tuple[str, str]]:
        """``client_properties_file``'s entries, then ``client_properties``'s, parsed (order kept).

        Raises:
            SettingsError: an entry is not ``key=value``, or a key is one the job sets itself; the
                file cannot be read or is readable by others.
        """
        var = "AIMASS_KAFKA_CLIENT_PROPERTIES"
        entries = [(e, var) for e in self.client_properties.split(";")]
        if self.client_properties_file is not None:
            entries = [(line, f"{var}_FILE") for line in read_secret_file(self.client_properties_file, f"{var}_FILE")
                       if not line.lstrip().startswith("#")] + entries
        pairs = []
        for entry, source in ((e.strip(), src) for e, src in entries):
            if not entry:
                continue
            key, sep, value = entry.partition("=")
            key = key.strip()
            if not sep or not key or "'" in entry:
                raise SettingsError(
                    f"{source}: {entry.split('=')[0]!r}... is not key=value "
                    f"({'one a line' if source != var else 'entries are separated by'} ';', no quotes)"
                )
            if key in _JOB_OWNED_KAFKA_PROPERTIES:
                raise SettingsError(f"{source} may not set {key!r}: the job sets it itself")
            pairs.append((key, value.strip()))
        return pairs


def read_secret_file(path: Path, var: str) -> list[str]:
    """The lines of a file of secrets, which must not be readable by others."""
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise SettingsError(f"{var}={path}: cannot read it ({exc.strerror})") from None
    if mode & 0o007:
        raise SettingsError(f"{var}={path} is readable by others: chmod 600 {path} (or 640 for a group)")
    return text.splitlines()


@dataclass(frozen=True)
class FlinkSettings:
    """The local standalone Flink session cluster."""

    host: str = "127.0.0.1"
    """Address the JobManager binds and advertises. Off loopback, ``aimass up`` refuses to start
    Flink there unless ``ssl`` (or ``unsafe_expose``) is set."""
    rest_port: int = 8081
    """Web UI and REST API port."""
    rpc_port: int = 16123
    """JobManager RPC port (not 6123, to keep clear of any other Flink)."""
    blob_port: int = 16124
    """JobManager blob server port."""
    taskmanager_rpc_ports: str = "16200-16299"
    """Port range the TaskManagers' RPC, data and blob endpoints pick from."""
    taskmanagers: int = 1
    """Number of TaskManager processes."""
    metrics_port: int = 19249
    """Prometheus endpoint (``/metrics``) of the JobManager; TaskManager N serves on
    ``metrics_port + 1 + N``. Flink's own Prometheus reporter (the wheel's plugin), so every
    Flink metric and the job's own are there. 0: no reporter."""
    slots: int = 2
    """Task slots per TaskManager."""
    taskmanager_memory: str = "2048m"
    """``taskmanager.memory.process.size``."""
    jobmanager_memory: str = "1024m"
    """``jobmanager.memory.process.size``."""
    start_timeout_s: float = 90.0
    """How long ``up`` waits for the JobManager REST API and the TaskManagers to register."""
    log_file_bytes: int = 20 * 1024 * 1024
    """Size at which a Flink process's log (``<state_dir>/logs/flink-*.log``) and its stdout and
    stderr (``jobmanager.out``, ``taskmanager-N.out``) roll over to a numbered older file."""
    log_backups: int = 4
    """Rolled-over files kept of each; older ones are deleted. A Flink process keeps at most
    ``(1 + log_backups) * log_file_bytes`` of ``.log`` files, and as much again of ``.out`` files."""
    ssl: bool = False
    """Flink's SSL with mutual authentication on every endpoint of the cluster ``aimass up``
    starts: the REST API (``security.ssl.rest.*``: only a client with a certificate of the
    cluster's CA gets an answer) and the RPC, blob and data connections between its processes
    (``security.ssl.internal.*``). The CA, keystore, truststore and password are generated on
    first start into ``<state_dir>/flink/tls/`` (owner-only); ``aimass`` presents that client
    certificate on every REST call and ``flink run``. Needed to bind Flink off loopback (or
    ``unsafe_expose``). See docs/SECURITY.md."""
    unsafe_expose: bool = False
    """Let ``aimass up`` bind Flink to a ``host`` other than loopback without ``ssl``: whoever
    reaches the REST port can then run any code as the user running Flink (``POST /jobs`` is
    open whatever ``web.submit.enable`` says), and the RPC and blob ports take anyone. Only on a
    network where every peer is trusted (the multi-host tests' private namespaces)."""
    allowed_origin: str = ""
    """``web.access-control-allow-origin``: the one web origin (``scheme://host:port``) whose pages
    may read REST answers in a browser. Empty: the REST API's own origin (its web UI); Flink's
    default, ``*``, would let any page the user opens read jobs, configuration and logs."""

    def __post_init__(self) -> None:
        if self.log_file_bytes < 1024 * 1024 or self.log_backups < 1:
            raise SettingsError(
                "AIMASS_FLINK_LOG_FILE_BYTES must be at least 1048576 and AIMASS_FLINK_LOG_BACKUPS at least 1"
            )
        if self.allowed_origin == "*" or self.allowed_origin.rstrip("/").count("/") not in (0, 2):
            raise SettingsError(
                f"AIMASS_FLINK_ALLOWED_ORIGIN={self.allowed_origin!r}: expected one origin, scheme://host:port "
                "(empty: the REST API's own)"
            )

    @property
    def rest_url(self) -> str:
        """Base URL of the REST API and web UI (``https`` with ``ssl``)."""
        return f"{'https' if self.ssl else 'http'}://{self.host}:{self.rest_port}"

    @property
    def origin(self) -> str:
        """``web.access-control-allow-origin``: ``allowed_origin``, else the REST API's own origin."""
        return self.allowed_origin.rstrip("/") or self.rest_url

    @property
    def on_loopback(self) -> bool:
        """Whether ``host`` is a loopback address (``127.0.0.0/8``, ``::1`` or ``localhost``)."""
        return is_loopback(self.host)


@dataclass(frozen=True)
class JobSettings:
    """The inference job."""

    name: str = "aimass-inference"
    """Job name shown in the web UI; ``aimass`` finds its job by this name."""
    parallelism: int = 1
    """Parallelism of the inference operator (and the job)."""
    max_parallelism: int = 128
    """``pipeline.max-parallelism``: fixed, since keyed state is split into this many groups."""
    lanes: int = 4
    """Micro-batching keys (see aimass/contract/keys.py): a request joins lane ``crc32(id) % lanes``,
    whatever its model. They are spread evenly over the key groups, so every parallelism
    dividing ``lanes`` gets the same number of lanes per subtask, and a rescale moves whole
    lanes with their pending requests. Fewer lanes than the parallelism you scale to leave
    subtasks idle; many more make batches fill more slowly (each lane gets less traffic).
    De-duplication is keyed by request id and does not depend on it."""
    delivery: Delivery = "exactly-once"
    """``exactly-once`` (transactional sink, results visible at each checkpoint) or
    ``at-least-once`` (lower latency; duplicates are identical and keyed by request id)."""
    checkpoint_interval_ms: int = 1000
    """Checkpoint interval; in exactly-once mode also the result visibility delay."""
    checkpoint_timeout_ms: int = 20_000
    """A checkpoint not complete by then counts as failed (a store that stops answering)."""
    tolerable_failed_checkpoints: int = 12
    """Failed checkpoints in a row the job serves through (consuming and inferring; in exactly-once
    mode its results wait, uncommitted, for the next completed checkpoint) before it restarts
    from the last completed one. At most: see :attr:`checkpoint_failures_tolerated`."""
    state_backend: StateBackend = "rocksdb"
    """``rocksdb`` (default: incremental checkpoints, so a checkpoint costs the ids claimed and the
    requests buffered since the last one, and state lives off the heap) or ``hashmap`` (heap;
    every checkpoint copies all de-duplication entries: its cost grows with ``dedup_ttl_s``)."""
    restart_attempts: int = 1000
    """Fixed-delay restart strategy: attempts before the job fails for good."""
    restart_delay_ms: int = 2000
    """Fixed-delay restart strategy: pause between attempts."""
    transaction_timeout_ms: int = 600_000
    """Producer ``transaction.timeout.ms`` (must not exceed the broker's maximum)."""
    transactional_id_prefix: str = "aimass-inference"
    """Transactional id prefix of the exactly-once sink (unique per job on a cluster)."""
    consumer_group: str = "aimass-inference"
    """Kafka consumer group of the request source."""
    max_batch_size: int = 32
    """Default rows per ONNX call when a model's metadata does not say."""
    max_delay_ms: int = 20
    """Default longest wait for a batch to fill when a model's metadata does not say."""
    dedup_ttl_s: int = 3600
    """How long a request id that has its result is remembered: within it, a resubmission, the
    same id under another model, or a bad record reusing the id gets no second result. The
    de-duplication state holds one small entry per id of the last ``dedup_ttl_s`` seconds
    (about 100 bytes on RocksDB); expired entries are dropped by RocksDB compaction."""
    batch_max_bytes: int = 16 * 1024 * 1024
    """A lane's batch is flushed when its records reach this many bytes, whatever their count
    (bounds the frame handed to Python)."""
    max_payload_bytes: int = 4 * 1024 * 1024
    """Requests larger than this are refused (OVERSIZED)."""
    inflight_batches: int = 8
    """Batches a micro-batch subtask hands its Python step at a time (docs/SCHEDULING.md): the
    rest wait in the scheduler, which picks the next batch by priority and deadline; 0 turns
    the window off (batches go as they fill, queueing first-in first-out behind back-pressure).
    Enough to cover the hand-over between the two task threads on a busy machine, no more than
    the network buffers between them hold (Flink's 2 per channel + 8 floating): a larger window
    blocks the scheduler's thread in the hand-over, and new requests then queue unseen."""
    inflight_ms: int = 50
    """The window also holds this much work, counted in batches of the measured batch time (up
    to 64 batches): small batches need more of them to keep Python busy across the hand-over.
    A high-priority request waits behind about this much work already handed over."""
    priority_aging_ms: int = 100
    """What one priority level is worth in waiting time: requests are served in order of
    arrival minus priority times this, so a low-priority request is overtaken only by requests
    that come within ``max_priority * priority_aging_ms`` after it (it never starves)."""
    max_priority: int = 10
    """Priorities are clamped to ``0..max_priority`` (negative ones count as 0)."""
    max_waiting_per_model: int = 2000
    """Admission: requests of one model waiting on a micro-batch subtask (priority orders only
    what waits here); beyond it, back-pressure or OVERLOADED (``overload``)."""
    max_waiting_bytes: int = 64 * 1024 * 1024
    """Admission: bytes of requests waiting on a micro-batch subtask; beyond it, back-pressure
    or OVERLOADED (``overload``)."""
    overload: Literal["backpressure", "shed"] = "backpressure"
    """What the scheduler does beyond its admission limits (docs/SCHEDULING.md): ``backpressure``
    stops reading input until there is room, so the rest waits in Kafka and is served in turn
    (nothing refused; a backlog after an outage is served, not refused); ``shed`` answers the
    request of the lowest priority OVERLOADED at once (fast feedback, bounded latency for what
    is admitted, also by ``max_queue_ms``)."""
    max_queue_ms: int = 1000
    """Admission with ``overload=shed``: a request is answered OVERLOADED at once when the
    requests waiting on its subtask would take longer than this to serve, at the measured batch
    time and size (0: no such limit). Keep it at most ``max_priority * priority_aging_ms``, and
    the highest priority is served ahead of the whole backlog."""
    batch_credit_timeout_ms: int = 2000
    """A batch handed to Python that is not reported answered within this long stops counting
    against ``inflight_batches`` (a safety net: reports are lost only in a restart)."""

    @property
    def checkpoint_failures_tolerated(self) -> int:
        """``tolerable_failed_checkpoints``, lowered in exactly-once mode until the outage it
        tolerates (each failure up to ``checkpoint_timeout_ms`` + ``checkpoint_interval_ms``) ends
        within half of ``transaction_timeout_ms``: a longer one could let the broker abort results
        that a later checkpoint would then claim as committed."""
        if self.delivery != "exactly-once":
            return self.tolerable_failed_checkpoints
        fits = self.transaction_timeout_ms // 2 // (self.checkpoint_timeout_ms + self.checkpoint_interval_ms)
        return min(self.tolerable_failed_checkpoints, fits)

    @property
    def request_record_limit(self) -> int:
        """``max.message.bytes`` of the requests topic: the payload limit plus headroom for the
        record envelope, so the broker refuses most larger records at produce time. Not all: the
        limit applies to a batch as compressed, so a producer that raises its own
        ``max.request.size`` can send a highly compressible record far larger; the job refuses it
        (``OVERSIZED``) and cuts its dead letter to fit (:func:`aimass.serving.rejects.reject`)."""
        return self.max_payload_bytes + 1024

    @property
    def output_record_limit(self) -> int:
        """Broker ``message.max.bytes`` and the sinks' ``max.request.size``: room for a dead
        letter carrying the largest request the requests topic accepts, plus its envelope."""
        return self.max_payload_bytes + 128 * 1024
    sync_models_dir: bool = True
    """At submit, publish a deploy for every version in ``paths.models_dir`` the control topic
    does not know yet (the embedded default; ``file://`` locations)."""
    python_mode: Literal["thread", "process"] = "thread"
    """PyFlink ``python.execution-mode``. ``thread`` (Python inside the TaskManager JVM, via
    pemja) by default: no Python worker process, no gRPC hop per bundle, measured 8x the
    throughput of ``process`` mode on the digits model. See udfs/core.py for the two traps
    it has for C extensions and how the operators avoid them."""


@dataclass(frozen=True)
class EngineSettings:
    """The serving core on each TaskManager: ONNX Runtime sessions and the model store. Read
    where the engine runs (``aimass.serving``), never by the job graph itself."""

    model_cache_dir: Path | None = None
    """Where a TaskManager keeps model versions fetched from the blob topic; unset:
    ``<state_dir>/model-cache`` (set it on hosts that do not share the state folder)."""
    model_load_timeout_s: float = 5.0
    """How long a batch waits for a routed version still loading on its TaskManager before its
    requests are answered INTERNAL_ERROR ("still loading"; an error result that does not claim
    the id, so a resubmission is served once the version has loaded). The wait holds every lane
    of the subtask: deploy big versions with a lead time (``aimass deploy --in``) longer than
    their fetch and load (docs/CONTROL.md, "Measured")."""
    intra_op_threads: int = 1
    """ONNX Runtime intra-op threads per slot (more oversubscribes small machines)."""
    use_gpu: bool = True
    """Use the CUDA execution provider when one is really usable; CPU otherwise."""


@dataclass(frozen=True)
class GatewaySettings:
    """The gRPC gateway (``aimass gateway``) and the defaults of the client library's result store."""

    host: str = "127.0.0.1"
    """Address the gateway listens on. Off localhost, set a token and TLS."""
    port: int = 19051
    """gRPC port."""
    tls_cert: Path | None = None
    """PEM server certificate (chain); with ``tls_key`` turns TLS on. Unset: plaintext."""
    tls_key: Path | None = None
    """PEM private key of ``tls_cert``."""
    token: str = field(default="", repr=False)
    """Bearer token clients must send as ``authorization: Bearer <token>``; empty: no check. One
    identity, ``default``, with admin rights (see ``tokens_file`` for several tenants). Prefer
    ``token_file``: a variable is seen by every process the shell starts."""
    token_file: Path | None = None
    """A file holding ``token`` (its first line; the file must not be readable by others)."""
    tokens_file: Path | None = None
    """Several identities, one a line: ``<tenant> <token>`` or ``<tenant> <token> admin`` (``#``
    comments; not readable by others: 0600, or 0640 for a group). A tenant's requests get ids
    ``<tenant>/<id>`` and it reads only those; only an admin may stream every result or use the
    Control service (docs/SECURITY.md)."""
    store_size: int = 100_000
    """Most results kept in memory for ``GetResult``; the oldest are dropped first."""
    store_bytes: int = 512 * 1024 * 1024
    """Most bytes of results kept in memory (outputs, errors and ids, counted as held); the
    oldest are dropped first when a new one would pass it."""
    ttl_s: float = 3600.0
    """How long a result stays answerable after it arrived (and how old a result read at start
    from the compacted topic may be)."""
    kafka_timeout_ms: int = 5000
    """Longest wait for Kafka to take a request; past it ``Submit`` answers UNAVAILABLE."""
    max_wait_s: float = 300.0
    """Longest ``GetResult`` wait, whatever the client's deadline."""
    max_concurrent_rpcs: int = 0
    """API calls in progress (waiting ones included) beyond which new calls get
    RESOURCE_EXHAUSTED. 0: sized from memory, a quarter of the machine's (or the container's)
    divided by the largest request a call may hold, between 64 and 10,000 (the gateway logs the
    figure). Health calls do not count here: they have ``max_health_calls``."""
    max_health_calls: int = 100
    """Health ``Check`` calls in progress beyond which new ones get RESOURCE_EXHAUSTED: a budget
    of their own, so that health calls (which need no token) cannot take the API's."""
    max_health_watches: int = 100
    """Health ``Watch`` streams open beyond which new ones get RESOURCE_EXHAUSTED: apart from
    ``Check`` (what probes call), so that watches held open cannot fail the probes either."""
    max_streams_per_connection: int = 1000
    """Calls one client connection may have open at once (HTTP/2 ``MAX_CONCURRENT_STREAMS``);
    more wait on the client's side. Keep it above the health budgets: calls refused by a budget
    end at once and free their stream, so a connection flooding with watches still carries its
    other calls."""
    max_stream_s: float = 900.0
    """A streaming call (``StreamResults``, health ``Watch``) still open after this long is
    ended with DEADLINE_EXCEEDED; open a new one (for ``StreamResults``, with the ids not yet
    answered)."""
    max_stream_ids: int = 10_000
    """Most request ids one ``StreamResults`` call may list."""
    stream_buffer: int = 1000
    """Results an admin's stream of every result may fall behind before newer ones are dropped
    for it (a stream of listed ids holds at most its ids' results)."""
    idle_timeout_s: float = 300.0
    """A client connection with no call in progress for this long is closed (GOAWAY)."""
    max_connection_age_s: float = 3600.0
    """A client connection is asked to reconnect after this long (calls in progress then get
    ``max_stream_s`` more to finish), so that no connection holds its resources for ever."""
    metrics_port: int = 0
    """Serve the gateway's Prometheus metrics (``/metrics``: calls by method and code, call
    durations, results kept) on this port of ``host``; 0: none."""
    health_port: int = 0
    """A second, plaintext port serving only the standard health service (for Kubernetes gRPC
    probes, which speak no TLS), with its own small call budget; 0: none (health is served on
    ``port`` beside the API)."""


@dataclass(frozen=True)
class AutoscaleSettings:
    """The opt-in autoscaler (``aimass autoscale``); policy in aimass/autoscale/policy.py."""

    min_parallelism: int = 1
    """Lowest parallelism the autoscaler scales the job down to."""
    max_parallelism: int = 2
    """Highest parallelism the autoscaler scales the job up to (at most ``job.max_parallelism``)."""
    interval_s: float = 5.0
    """Seconds between two metric samples (Flink's REST metrics are refreshed every 2 s)."""
    cooldown_s: float = 60.0
    """No decision for this long after a rescale (or a refused one): the job restarts, catches up,
    and its metrics settle at the new parallelism first."""
    sustain_samples: int = 3
    """A condition must hold in this many consecutive samples at the current parallelism."""
    step: ScaleStep = "one"
    """``one``: add or remove one subtask; ``double``: double or halve (with a power-of-two
    ``job.lanes`` every step is a parallelism that divides it, so the lanes stay even)."""
    scale_up_lag: int = 2000
    """Scale up when the consumer group's lag on the requests topic is at least this (records)."""
    scale_up_busy: float = 0.8
    """Scale up when the busiest batch-infer subtask was busy at least this share of the last
    interval (from Flink's ``accumulateBusyTimeMs``; see aimass/autoscale/metrics.py)."""
    scale_up_latency_ms: float = 5000.0
    """Scale up when the 90th percentile end-to-end latency of fresh results is at least this
    (milliseconds); 0 ignores latency."""
    scale_down_lag: int = 100
    """Scale down only while the lag is at most this (and not growing) ..."""
    scale_down_busy: float = 0.3
    """... and the busiest subtask is busy at most this share, and would stay below
    ``scale_up_busy`` at the lower parallelism."""
    latency_records: int = 50
    """Newest results per partition read for the latency figure at each sample; 0 skips it."""
    add_taskmanagers: bool = False
    """Start local TaskManagers when scaling up beyond the cluster's slots (local stack only;
    they are not stopped on scale-down)."""
    rescale_timeout_s: float = 180.0
    """Longest wait for the job to run at the new parallelism."""


@dataclass(frozen=True)
class StorageSettings:
    """Where checkpoints and savepoints go: a local folder (the embedded default) or object
    storage through Flink's S3 file system plugin (``docs/DEPLOY.md``). Credentials are never
    settings: the S3 plugin and ``aimass up``'s preflight read ``AWS_ACCESS_KEY_ID`` and
    ``AWS_SECRET_ACCESS_KEY`` (or the other usual AWS places) and print neither."""

    uri: str = ""
    """Base of checkpoints and savepoints (``checkpoints/`` and ``savepoints/`` under it):
    ``s3://bucket/prefix`` or ``file:///folder``. Empty: ``paths.state_dir``. Every JobManager
    and TaskManager must reach it; on several hosts that means object storage (or a shared
    file system)."""
    s3_endpoint: str = ""
    """Endpoint of an S3-compatible store, ``http(s)://host:port`` (then path-style access is
    used, as such stores expect). Empty: AWS S3."""
    s3_region: str = "us-east-1"
    """Region for request signing (most S3-compatible stores accept any)."""
    local_port: int = 0
    """Start a local S3-compatible store (SeaweedFS, ``make seaweedfs``) with ``aimass up``, its S3
    API on this port and its other ports on the nine after it; then set ``uri`` to
    ``s3://<bucket>/...`` and ``s3_endpoint`` to ``http://<kafka.host>:<this port>``. 0: none."""

    @property
    def is_s3(self) -> bool:
        """Whether checkpoints go to object storage."""
        return self.uri.startswith(STORAGE_SCHEMES[1:])


#: URI schemes ``storage.uri`` may use: a local/shared folder, or S3 (both of the S3 plugin's).
STORAGE_SCHEMES = ("file://", "s3://", "s3a://")


@dataclass(frozen=True)
class Settings:
    """All settings, grouped by section."""

    paths: PathSettings = field(default_factory=PathSettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    flink: FlinkSettings = field(default_factory=FlinkSettings)
    job: JobSettings = field(default_factory=JobSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    autoscale: AutoscaleSettings = field(default_factory=AutoscaleSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)

    @property
    def checkpoint_uri(self) -> str:
        """``execution.checkpointing.dir``: ``checkpoints/`` under ``storage.uri`` (or the state folder)."""
        return f"{self._storage_base()}/checkpoints"

    @property
    def savepoint_uri(self) -> str:
        """``execution.checkpointing.savepoint-dir``: ``savepoints/`` beside the checkpoints."""
        return f"{self._storage_base()}/savepoints"

    def _storage_base(self) -> str:
        return self.storage.uri.rstrip("/") or self.paths.state_dir.as_uri()

    @classmethod
    def load(
        cls, env: Mapping[str, str] | None = None, overrides: Mapping[str, str] | None = None
    ) -> Settings:
        """Defaults, then ``AIMASS_*`` environment variables, then ``section.field`` overrides."""
        env = os.environ if env is None else env
        for key, instead in RETIRED.items():
            var = f"{ENV_PREFIX}{key.replace('.', '_')}".upper()
            if var in env or key in (overrides or {}):
                raise SettingsError(f"{var} ({key}) is no longer a setting: {instead}")
        sections: dict[str, Any] = {}
        for section in dataclasses.fields(cls):
            section_type = typing.get_type_hints(cls)[section.name]
            values: dict[str, Any] = {}
            hints = typing.get_type_hints(section_type)
            for item in dataclasses.fields(section_type):
                var = f"{ENV_PREFIX}{section.name}_{item.name}".upper()
                key = f"{section.name}.{item.name}"
                raw = (overrides or {}).get(key, env.get(var))
                if raw is not None:
                    values[item.name] = _parse(raw, hints[item.name], var)
            sections[section.name] = section_type(**values)
        settings = cls(**sections)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse combinations that cannot work, naming the setting to change."""
        job = self.job
        if not 1 <= job.parallelism <= job.max_parallelism:
            raise SettingsError(
                f"AIMASS_JOB_PARALLELISM={job.parallelism} must be between 1 and "
                f"AIMASS_JOB_MAX_PARALLELISM={job.max_parallelism}"
            )
        if job.transaction_timeout_ms > self.kafka.transaction_max_timeout_ms:
            raise SettingsError(
                f"AIMASS_JOB_TRANSACTION_TIMEOUT_MS={job.transaction_timeout_ms} exceeds the "
                f"broker maximum AIMASS_KAFKA_TRANSACTION_MAX_TIMEOUT_MS="
                f"{self.kafka.transaction_max_timeout_ms}: lower the first or raise the second"
            )
        self.kafka.client_property_pairs()  # raises on a malformed entry
        if self.kafka.acls and not self.kafka.secure_port:
            raise SettingsError(
                "AIMASS_KAFKA_ACLS needs the SASL_SSL listener: set AIMASS_KAFKA_SECURE_PORT (e.g. 19094)")
        for server in filter(None, self.kafka.bootstrap_servers.split(",")):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise SettingsError(
                    f"AIMASS_KAFKA_BOOTSTRAP_SERVERS: {server.strip()!r} is not host:port "
                    "(several are separated by commas)"
                )
        if job.tolerable_failed_checkpoints < 0 or job.checkpoint_timeout_ms < 1:
            raise SettingsError("AIMASS_JOB_TOLERABLE_FAILED_CHECKPOINTS must be >= 0 and _CHECKPOINT_TIMEOUT_MS >= 1")
        if job.delivery == "exactly-once" and not job.transactional_id_prefix:
            raise SettingsError("exactly-once delivery needs AIMASS_JOB_TRANSACTIONAL_ID_PREFIX")
        if job.max_payload_bytes < 1:
            raise SettingsError("AIMASS_JOB_MAX_PAYLOAD_BYTES must be positive")
        if job.max_batch_size < 1 or job.max_delay_ms < 0:
            raise SettingsError("AIMASS_JOB_MAX_BATCH_SIZE must be >= 1 and AIMASS_JOB_MAX_DELAY_MS >= 0")
        if (min(job.inflight_batches, job.inflight_ms, job.priority_aging_ms, job.max_priority, job.max_queue_ms) < 0
                or min(job.max_waiting_per_model, job.max_waiting_bytes, job.batch_credit_timeout_ms) < 1):
            raise SettingsError(
                "AIMASS_JOB_INFLIGHT_BATCHES, _INFLIGHT_MS, _PRIORITY_AGING_MS, _MAX_PRIORITY and _MAX_QUEUE_MS "
                "must be >= 0, _MAX_WAITING_PER_MODEL, _MAX_WAITING_BYTES and _BATCH_CREDIT_TIMEOUT_MS >= 1"
            )
        if not 1 <= job.lanes <= job.max_parallelism:
            raise SettingsError(
                f"AIMASS_JOB_LANES={job.lanes} must be between 1 and AIMASS_JOB_MAX_PARALLELISM={job.max_parallelism}"
            )
        gateway = self.gateway
        if (gateway.tls_cert is None) != (gateway.tls_key is None):
            raise SettingsError("TLS needs both AIMASS_GATEWAY_TLS_CERT and AIMASS_GATEWAY_TLS_KEY (or neither)")
        if gateway.store_size < 1 or gateway.ttl_s <= 0 or gateway.store_bytes < 1:
            raise SettingsError("AIMASS_GATEWAY_STORE_SIZE, _STORE_BYTES and _TTL_S must be positive")
        if gateway.token and gateway.token_file is not None:
            raise SettingsError("set AIMASS_GATEWAY_TOKEN or AIMASS_GATEWAY_TOKEN_FILE, not both")
        if (gateway.max_concurrent_rpcs < 0 or min(gateway.max_health_calls, gateway.max_health_watches,
                                                    gateway.max_streams_per_connection,
                                                    gateway.max_stream_ids, gateway.stream_buffer) < 1
                or min(gateway.max_stream_s, gateway.idle_timeout_s, gateway.max_connection_age_s) <= 0):
            raise SettingsError(
                "AIMASS_GATEWAY_MAX_CONCURRENT_RPCS must be >= 0 (0: sized from memory); _MAX_HEALTH_CALLS, _WATCHES, "
                "_MAX_STREAMS_PER_CONNECTION, _MAX_STREAM_IDS, _STREAM_BUFFER, _MAX_STREAM_S, _IDLE_TIMEOUT_S "
                "and _MAX_CONNECTION_AGE_S must be positive"
            )
        scale = self.autoscale
        if not 1 <= scale.min_parallelism <= scale.max_parallelism <= job.max_parallelism:
            raise SettingsError(
                f"need 1 <= AIMASS_AUTOSCALE_MIN_PARALLELISM={scale.min_parallelism} <= "
                f"AIMASS_AUTOSCALE_MAX_PARALLELISM={scale.max_parallelism} <= "
                f"AIMASS_JOB_MAX_PARALLELISM={job.max_parallelism}"
            )
        if scale.interval_s <= 0 or scale.cooldown_s < 0 or scale.sustain_samples < 1:
            raise SettingsError(
                "AIMASS_AUTOSCALE_INTERVAL_S must be > 0, _COOLDOWN_S >= 0 and _SUSTAIN_SAMPLES >= 1"
            )
        if not 0 <= scale.scale_down_busy < scale.scale_up_busy:
            raise SettingsError(
                f"AIMASS_AUTOSCALE_SCALE_DOWN_BUSY={scale.scale_down_busy} must be >= 0 and below "
                f"AIMASS_AUTOSCALE_SCALE_UP_BUSY={scale.scale_up_busy} (the gap is the hysteresis)"
            )
        if not 0 <= scale.scale_down_lag < scale.scale_up_lag:
            raise SettingsError(
                f"AIMASS_AUTOSCALE_SCALE_DOWN_LAG={scale.scale_down_lag} must be >= 0 and below "
                f"AIMASS_AUTOSCALE_SCALE_UP_LAG={scale.scale_up_lag} (the gap is the hysteresis)"
            )
        storage = self.storage
        if storage.uri and (not storage.uri.startswith(STORAGE_SCHEMES) or storage.uri.rstrip("/").endswith("//")):
            raise SettingsError(
                f"AIMASS_STORAGE_URI={storage.uri!r}: expected s3://bucket[/prefix] or file:///folder"
            )
        if storage.s3_endpoint and not storage.s3_endpoint.startswith(("http://", "https://")):
            raise SettingsError(
                f"AIMASS_STORAGE_S3_ENDPOINT={storage.s3_endpoint!r}: expected http://host:port or https://host:port"
            )
        if storage.local_port and not (storage.is_s3 and storage.s3_endpoint):
            raise SettingsError(
                f"AIMASS_STORAGE_LOCAL_PORT={storage.local_port} starts a local S3 store: set AIMASS_STORAGE_URI="
                f"s3://<bucket>/<prefix> and AIMASS_STORAGE_S3_ENDPOINT=http://{self.kafka.host}:{storage.local_port}"
            )
        if scale.scale_up_latency_ms < 0 or scale.latency_records < 0:
            raise SettingsError("AIMASS_AUTOSCALE_SCALE_UP_LATENCY_MS and _LATENCY_RECORDS must be >= 0")

    def as_env(self) -> dict[str, str]:
        """These settings as ``AIMASS_*`` variables (to hand to a child process)."""
        out: dict[str, str] = {}
        for section in dataclasses.fields(self):
            group = getattr(self, section.name)
            for item in dataclasses.fields(group):
                value = getattr(group, item.name)
                if isinstance(value, bool):
                    value = "true" if value else "false"
                elif value is None:
                    value = ""
                out[f"{ENV_PREFIX}{section.name}_{item.name}".upper()] = str(value)
        return out


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only: ``localhost`` or a loopback IP address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse(raw: str, hint: Any, var: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if raw not in choices:
            raise SettingsError(f"{var}={raw!r}: expected one of {', '.join(choices)}")
        return raw
    if origin in (typing.Union, types.UnionType):
        if raw == "" and type(None) in typing.get_args(hint):
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    try:
        if hint is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if hint is Path:
            return Path(raw).expanduser().resolve()
        return hint(raw)
    except ValueError:
        raise SettingsError(f"{var}={raw!r} is not a valid {getattr(hint, '__name__', hint)}") from None
