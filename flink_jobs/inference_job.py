"""The AI Mass inference job: Kafka requests -> keyed, batched ONNX inference -> Kafka results.

::

    control ─ key_by(0) ─ control ─ control dead letters
                (Python: the routing in keyed state)
                   │ route updates, broadcast
    requests ─ route ─ key_by(lane) ─ micro-batch ─ batch-infer ─ split-outputs ─ key_by(id) ─ dedup ─ results
       (Java: peek id, model,   (Java: heap,   (Python, once  (Java) │  │  ↑          (Java: one result
        version; choose the      priority,     per batch)            │  │  │           per id)
        version; the lane)       deadlines,                          │  └─ shadow results ─ shadow topic
                                 admission) ── expired, overloaded ──┼─────┘
                                                                     └─ dead letters ─ dead-letter topic

``micro-batch`` is also the scheduler (docs/SCHEDULING.md): it hands Python at most
``job.inflight_batches`` batches at a time, picks each from everything waiting by priority,
sends it early enough for the earliest deadline in it, and answers itself the requests whose
deadline passes while they wait (DEADLINE_EXCEEDED, with a dead letter) and those beyond the
admission limits (OVERLOADED).

Which version serves a request is decided by ``route`` from the routing the control topic
builds (docs/CONTROL.md), at the request's Kafka timestamp, and travels with the record;
the Python step serves exactly that version, loading it when the route update announcing it
arrives (forwarded by ``route`` to every lane).

Routing, micro-batching and de-duplication are small Java operators (``java/``, shipped with
the job as ``pipeline.jars``); Python is called once per batch, with one byte frame in and one
out (:mod:`aimass.contract.frames`), and does all the decoding, validation, inference and encoding
(:class:`aimass.serving.batches.BatchServer`). State: each lane's pending records, and one entry per
claimed request id (TTL ``job.dedup_ttl_s``), on RocksDB with incremental checkpoints, so a
checkpoint costs what changed since the last one. Pending records wait on the heap and enter
operator state only at a checkpoint (``MicroBatch``), so RocksDB holds the ids alone.

:func:`build_pipeline` is a function of its source and returns its two output streams, so a
pipeline test can wire an in-memory collection; :func:`main` wires the Kafka tables.
Submit with ``aimass submit`` (or ``flink run -py flink_jobs/inference_job.py``); settings
come from ``AIMASS_*`` variables and ``--set section.field=value``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, NamedTuple

from pyflink.common import Configuration
from pyflink.common.typeinfo import Types
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from aimass.kafka_config import job_client_properties
from aimass.operators import BATCH_INFER, CONTROL, DEDUP, MICRO_BATCH, ROUTE, SPLIT_OUTPUTS
from aimass.settings import AutoscaleSettings, FlinkSettings, GatewaySettings, Settings, StorageSettings
from udfs.control import CONTROL_DEAD_LETTERS, ApplyControl
from udfs.infer_batch import InferBatch

#: Row type of a source in pipeline tests: the raw record value, its Kafka position and timestamp
#: (epoch ms; the Kafka table gives an Instant, which ``Route`` reads as well).
SOURCE_ROW = Types.ROW_NAMED(
    ["value", "topic", "partition", "offset", "timestamp"],
    [Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.STRING(), Types.INT(), Types.LONG(), Types.LONG()],
)
#: Row type of the control source.
CONTROL_ROW = Types.ROW_NAMED(
    ["value", "topic", "partition", "offset"],
    [Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.STRING(), Types.INT(), Types.LONG()],
)
#: Row type of the results stream: Kafka key (request id) and value.
RESULT_ROW = Types.ROW_NAMED(["k", "v"], [Types.STRING(), Types.PRIMITIVE_ARRAY(Types.BYTE())])
#: Row type of the dead-letter stream.
DEAD_LETTER_ROW = Types.ROW_NAMED(["v"], [Types.PRIMITIVE_ARRAY(Types.BYTE())])
FRAME = Types.PRIMITIVE_ARRAY(Types.BYTE())


def ops_jar(settings: Settings) -> Path:
    """The job's Java operators, built by Maven from ``java/`` (``make setup``)."""
    jar = settings.paths.jars_dir / "job" / "aimass-flink-ops.jar"
    if not jar.is_file():
        raise SystemExit(f"error: {jar} is missing: run `make setup` (Maven builds it from java/)")
    return jar


def _graph(env: StreamExecutionEnvironment, settings: Settings) -> Any:
    """The Java ``ai.aimass.flink.Graph``, with the operators' jar added to the job once."""
    from pyflink.java_gateway import get_gateway

    uri = ops_jar(settings).as_uri()
    jvm = get_gateway().jvm
    config = jvm.org.apache.flink.python.util.PythonConfigUtil.getEnvironmentConfig(
        env._j_stream_execution_environment)
    if uri not in (config.getString("pipeline.jars", None) or ""):
        env.add_jars(uri)
    return get_gateway().jvm.ai.aimass.flink.Graph


class Outputs(NamedTuple):
    """The job's output streams, as Row streams for their sinks."""

    results: DataStream
    dead_letters: DataStream
    shadows: DataStream
    control_dead_letters: DataStream


def build_pipeline(source: DataStream, control: DataStream, settings: Settings, ready_token: str = "",
                   restore_markers: bool = False) -> Outputs:
    """Wire control -> route -> micro-batch -> batch-infer -> dedup (see the module docstring).

    ``ready_token``: the marker ``route`` waits for on the control input before it routes
    requests (empty: route from the start; a bounded control input also ends the wait).
    ``restore_markers``: the control step writes a marker to the control topic whenever it
    opens, and ``route`` holds requests after a restore until it has passed (the Kafka job;
    pipeline tests have no control topic to write to).
    """
    from aimass.contract.codec import Codec

    job = settings.job
    graph = _graph(source.get_execution_environment(), settings)
    updates = (
        control.key_by(lambda row: 0, key_type=Types.INT())
        .process(ApplyControl(operator_settings(settings), restore_markers), output_type=FRAME)
        .name(CONTROL.name).uid(CONTROL.uid).set_parallelism(1)
    )
    control_dead_letters = updates.get_side_output(CONTROL_DEAD_LETTERS)
    codec = Codec(settings.paths.schemas_dir)
    header = codec.request_header
    routed = DataStream(graph.route(
        source._j_data_stream, updates._j_data_stream, header, job.lanes, job.max_parallelism,
        job.max_batch_size, job.max_delay_ms, job.batch_max_bytes, ready_token, restore_markers,
    )).name(ROUTE.name).uid(ROUTE.uid)
    fingerprints = codec.fingerprints
    j_batches = graph.microBatch(
        routed._j_data_stream, job.batch_max_bytes, header,
        _header(fingerprints["ai.aimass.InferenceResult"]), _header(fingerprints["ai.aimass.DeadLetter"]),
        job.inflight_batches, job.batch_credit_timeout_ms, job.priority_aging_ms, job.max_priority,
        job.max_waiting_per_model, job.max_waiting_bytes, job.max_queue_ms, job.inflight_ms, job.overload == "shed",
    )
    batches = DataStream(j_batches).name(MICRO_BATCH.name).uid(MICRO_BATCH.uid).set_parallelism(job.parallelism)
    # A chain of its own: the scheduler keeps reading (and ordering, expiring, admitting) while
    # Python serves the batches it has handed over (docs/SCHEDULING.md).
    frames = (
        batches.map(InferBatch(operator_settings(settings)), output_type=FRAME)
        .name(BATCH_INFER.name).uid(BATCH_INFER.uid).set_parallelism(job.parallelism).start_new_chain()
    )
    j_outputs = graph.outputs(frames._j_data_stream)
    DataStream(j_outputs).name(SPLIT_OUTPUTS.name).uid(SPLIT_OUTPUTS.uid).set_parallelism(job.parallelism)
    results = (
        DataStream(graph.dedup(j_outputs, j_batches, job.dedup_ttl_s))
        .name(DEDUP.name).uid(DEDUP.uid).set_parallelism(job.parallelism)
    )
    return Outputs(results, DataStream(graph.deadLetters(j_outputs, j_batches)),
                   DataStream(graph.shadows(j_outputs)), control_dead_letters)


def operator_settings(settings: Settings) -> Settings:
    """The settings the job's Python operators carry, pickled into the job graph (which the
    JobManager keeps, ships to every TaskManager and anyone with the REST API can fetch): the
    sections they use (``paths``, ``kafka``, ``job``, ``engine``), the others at their defaults,
    so no gateway token, autoscaler, storage or cluster setting travels with the job. The Kafka
    client properties stay: the operators read the control and blob topics with them."""
    return dataclasses.replace(settings, flink=FlinkSettings(), gateway=GatewaySettings(),
                               autoscale=AutoscaleSettings(), storage=StorageSettings())


def _header(fingerprint: bytes) -> bytes:
    """The single-object header of a schema of this fingerprint."""
    return b"\xc3\x01" + fingerprint


def job_configuration(settings: Settings) -> Configuration:
    """Flink configuration of the job: execution mode, checkpoints, state backend, restarts."""
    job = settings.job
    config = Configuration()
    values = {
        "pipeline.name": job.name,
        "pipeline.max-parallelism": str(job.max_parallelism),
        "parallelism.default": str(job.parallelism),
        "python.execution-mode": job.python_mode,
        "execution.checkpointing.interval": f"{job.checkpoint_interval_ms} ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "execution.checkpointing.min-pause": "0 ms",
        "execution.checkpointing.timeout": f"{job.checkpoint_timeout_ms} ms",
        # A store that stops answering fails checkpoints, not the job (settings.py bounds how many).
        "execution.checkpointing.tolerable-failed-checkpoints": str(job.checkpoint_failures_tolerated),
        "execution.checkpointing.dir": settings.checkpoint_uri,
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "state.backend.type": job.state_backend,
        # RocksDB: a checkpoint uploads the SST files written since the last one, not all state.
        "execution.checkpointing.incremental": "true",
        # Most de-duplication lookups are for new ids: a bloom filter answers those without
        # reading the SST files' index blocks.
        "state.backend.rocksdb.use-bloom-filter": "true",
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": str(job.restart_attempts),
        "restart-strategy.fixed-delay.delay": f"{job.restart_delay_ms} ms",
    }
    if job.python_mode == "process":
        # Process mode only (thread mode ignores them): bundles amortise the gRPC hop. One element
        # is a whole batch here, so small bundles; there is no Python state to cache.
        values["python.fn-execution.bundle.size"] = "16"
        values["python.fn-execution.bundle.time"] = "5"
    for key, value in values.items():
        config.set_string(key, value)
    return config


def kafka_tables(t_env: StreamTableEnvironment, settings: Settings) -> None:
    """Declare the requests and control sources and the four sinks as Kafka tables."""
    k, job = settings.kafka, settings.job
    common = f"'connector' = 'kafka', 'properties.bootstrap.servers' = '{k.bootstrap}'" + "".join(
        f", 'properties.{key}' = '{value}'" for key, value in job_client_properties(k)
    )
    if job.delivery == "exactly-once":
        guarantee = (
            "'sink.delivery-guarantee' = 'exactly-once', "
            f"'sink.transactional-id-prefix' = '{job.transactional_id_prefix}', "
            f"'properties.transaction.timeout.ms' = '{job.transaction_timeout_ms}'"
        )
    else:
        guarantee = "'sink.delivery-guarantee' = 'at-least-once'"
    t_env.execute_sql(f"""
        CREATE TEMPORARY TABLE requests (
            `value` BYTES,
            `topic` STRING METADATA VIRTUAL,
            `partition` INT METADATA VIRTUAL,
            `offset` BIGINT METADATA VIRTUAL,
            `timestamp` TIMESTAMP_LTZ(3) METADATA VIRTUAL
        ) WITH ({common}, 'topic' = '{k.requests_topic}',
            'properties.group.id' = '{job.consumer_group}',
            'properties.isolation.level' = 'read_committed',
            'properties.auto.offset.reset' = 'earliest',
            'scan.startup.mode' = 'group-offsets',
            'value.format' = 'raw')""")
    # The whole control topic, from its start, on a fresh submit (a restore resumes at the
    # checkpoint's offsets): the routing is rebuilt from the compacted commands.
    t_env.execute_sql(f"""
        CREATE TEMPORARY TABLE control (
            `value` BYTES,
            `topic` STRING METADATA VIRTUAL,
            `partition` INT METADATA VIRTUAL,
            `offset` BIGINT METADATA VIRTUAL
        ) WITH ({common}, 'topic' = '{k.control_topic}',
            'properties.group.id' = '{job.consumer_group}-control',
            'properties.isolation.level' = 'read_committed',
            'scan.startup.mode' = 'earliest-offset',
            'value.format' = 'raw')""")
    sinks = (("results", k.results_topic, "", True), ("dead_letters", k.dead_letter_topic, "-dlq", False),
             ("shadow_results", k.shadow_topic, "-shadow", True),
             ("control_dead_letters", k.control_dead_letter_topic, "-cdlq", False))
    for table, topic, suffix, keyed in sinks:
        # Keyed sinks carry the request id as the Kafka key (compacted topics); each sink has a
        # transactional id prefix of its own.
        columns = "`k` STRING, `v` BYTES" if keyed else "`v` BYTES"
        key = ("'key.format' = 'raw', 'key.fields' = 'k', 'value.fields-include' = 'EXCEPT_KEY', "
               if keyed else "")
        t_env.execute_sql(f"""
            CREATE TEMPORARY TABLE {table} ({columns})
            WITH ({common}, 'topic' = '{topic}', {key}'value.format' = 'raw',
                'properties.max.request.size' = '{job.output_record_limit}',
                {guarantee.replace(job.transactional_id_prefix, job.transactional_id_prefix + suffix)})""")


def main(argv: list[str] | None = None) -> None:
    """Build the job against the Kafka topics and submit it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="override a setting, e.g. --set job.delivery=at-least-once")
    args = parser.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.set)
    settings = Settings.load(overrides=overrides)

    from aimass.control.admin import ControlAdmin

    # Before the job starts: the local folder's versions published (the embedded default), then
    # this submit's marker, which `route` waits for before it routes the first request.
    with ControlAdmin(settings) as admin:
        if settings.job.sync_models_dir:
            for line in admin.sync(settings.paths.models_dir, at_submit=True):
                print(f"[aimass] {line}", flush=True)
        token = admin.mark(settings.job.name)

    env = StreamExecutionEnvironment.get_execution_environment(job_configuration(settings))
    t_env = StreamTableEnvironment.create(env)
    kafka_tables(t_env, settings)
    source = t_env.to_data_stream(t_env.from_path("requests"))
    control = t_env.to_data_stream(t_env.from_path("control"))
    outputs = build_pipeline(source, control, settings, token, restore_markers=True)
    statements = t_env.create_statement_set()
    for table, stream in (("results", outputs.results), ("dead_letters", outputs.dead_letters),
                          ("shadow_results", outputs.shadows), ("control_dead_letters", outputs.control_dead_letters)):
        statements.add_insert(table, t_env.from_data_stream(stream))
    statements.attach_as_datastream()
    env.execute(settings.job.name)


if __name__ == "__main__":
    main(sys.argv[1:])
