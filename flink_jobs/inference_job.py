"""The AI Mass inference job: Kafka requests -> keyed, batched ONNX inference -> Kafka results.

::

    requests ─ route ─ key_by(lane) ─ micro-batch ─ batch-infer ─ split-outputs ─ key_by(id) ─ dedup ─ results
               (Java:   peek id,      (Java: keyed   (Python, once  (Java)   │                (Java: one result
               lane, limits)          state, timer)  per batch)              └─ dead letters ─ dead-letter topic

Routing, micro-batching and de-duplication are small Java operators (``java/``, shipped with
the job as ``pipeline.jars``); Python is called once per batch, with one byte frame in and one
out (:mod:`aimass.frames`), and does all the decoding, validation, inference and encoding
(:class:`aimass.batches.BatchServer`). State: each lane's pending records, and one entry per
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
import sys
from pathlib import Path
from typing import Any

from pyflink.common import Configuration
from pyflink.common.typeinfo import Types
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from aimass.kafka_config import job_client_properties
from aimass.settings import Settings
from udfs.infer_batch import InferBatch

#: Row type of the source: the raw record value and its Kafka position.
SOURCE_ROW = Types.ROW_NAMED(
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


def _batch_limits(settings: Settings) -> tuple[dict[str, int], dict[str, int]]:
    """Per model, flush records and delay from its newest version's metadata (job defaults else)."""
    from aimass.models import ModelError, ModelRepository

    records: dict[str, int] = {}
    delays: dict[str, int] = {}
    repository = ModelRepository(settings.paths.models_dir)
    for name in repository.names():
        try:
            spec = repository.resolve(name)
        except ModelError:
            continue  # served (or refused) per request; the job's defaults batch it
        if spec.max_batch_size is not None:
            records[name] = spec.max_batch_size
        if spec.max_delay_ms is not None:
            delays[name] = spec.max_delay_ms
    return records, delays


def build_pipeline(source: DataStream, settings: Settings) -> tuple[DataStream, DataStream]:
    """Wire route -> micro-batch -> batch-infer -> dedup; returns (results, dead letters) as Row streams."""
    from pyflink.java_gateway import get_gateway

    from aimass.codec import Codec

    job = settings.job
    graph = _graph(source.get_execution_environment(), settings)
    gateway = get_gateway()
    records, delays = _batch_limits(settings)
    j_records, j_delays = gateway.jvm.java.util.HashMap(), gateway.jvm.java.util.HashMap()
    for name, value in records.items():
        j_records.put(name, value)
    for name, value in delays.items():
        j_delays.put(name, value)
    header = Codec(settings.paths.schemas_dir).request_header
    routed = DataStream(graph.route(
        source._j_data_stream, header, job.lanes, job.max_parallelism, j_records, j_delays,
        job.max_batch_size, job.max_delay_ms, job.batch_max_bytes,
    )).name("route").uid("route")
    batches = (
        DataStream(graph.microBatch(routed._j_data_stream, job.batch_max_bytes))
        .name("micro-batch").uid("micro-batch").set_parallelism(job.parallelism)
    )
    frames = (
        batches.map(InferBatch(settings), output_type=FRAME)
        .name("batch-infer").uid("infer-batch").set_parallelism(job.parallelism)
    )
    j_outputs = graph.outputs(frames._j_data_stream)
    DataStream(j_outputs).name("split-outputs").uid("split-outputs").set_parallelism(job.parallelism)
    dead_letters = DataStream(graph.deadLetters(j_outputs))
    results = (
        DataStream(graph.dedup(j_outputs, job.dedup_ttl_s))
        .name("dedup").uid("dedup").set_parallelism(job.parallelism)
    )
    return results, dead_letters


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
        "execution.checkpointing.dir": (settings.paths.state_dir / "checkpoints").as_uri(),
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
    """Declare the requests source and the results and dead-letter sinks as Kafka tables."""
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
            `offset` BIGINT METADATA VIRTUAL
        ) WITH ({common}, 'topic' = '{k.requests_topic}',
            'properties.group.id' = '{job.consumer_group}',
            'properties.isolation.level' = 'read_committed',
            'properties.auto.offset.reset' = 'earliest',
            'scan.startup.mode' = 'group-offsets',
            'value.format' = 'raw')""")
    t_env.execute_sql(f"""
        CREATE TEMPORARY TABLE results (`k` STRING, `v` BYTES)
        WITH ({common}, 'topic' = '{k.results_topic}',
            'key.format' = 'raw', 'key.fields' = 'k',
            'value.format' = 'raw', 'value.fields-include' = 'EXCEPT_KEY',
            'properties.max.request.size' = '{job.output_record_limit}',
            {guarantee})""")
    t_env.execute_sql(f"""
        CREATE TEMPORARY TABLE dead_letters (`v` BYTES)
        WITH ({common}, 'topic' = '{k.dead_letter_topic}', 'value.format' = 'raw',
            'properties.max.request.size' = '{job.output_record_limit}',
            {guarantee.replace(job.transactional_id_prefix, job.transactional_id_prefix + '-dlq')})""")


def main(argv: list[str] | None = None) -> None:
    """Build the job against the Kafka topics and submit it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="override a setting, e.g. --set job.delivery=at-least-once")
    args = parser.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.set)
    settings = Settings.load(overrides=overrides)

    env = StreamExecutionEnvironment.get_execution_environment(job_configuration(settings))
    t_env = StreamTableEnvironment.create(env)
    kafka_tables(t_env, settings)
    source = t_env.to_data_stream(t_env.from_path("requests"))
    results, dead_letters = build_pipeline(source, settings)
    statements = t_env.create_statement_set()
    statements.add_insert("results", t_env.from_data_stream(results))
    statements.add_insert("dead_letters", t_env.from_data_stream(dead_letters))
    statements.attach_as_datastream()
    env.execute(settings.job.name)


if __name__ == "__main__":
    main(sys.argv[1:])
