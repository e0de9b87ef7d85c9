"""The AI Mass inference job: Kafka requests -> keyed, batched ONNX inference -> Kafka results.

::

    requests ─ route (peek id, model) ─┬─ key_by(model, lane) ─ BatchInfer ─┬─ results topic
                                       │   (decode, validate, batch, infer) │
                                       ├─ error results ────────────────────┘
                                       └─ dead letters ─────────────────────┬─ dead-letter topic
                                                 BatchInfer dead letters ───┘

:func:`build_pipeline` is a function of its source and returns its two output streams, so a
pipeline test can wire an in-memory collection; :func:`main` wires the Kafka tables.
Submit with ``aimass submit`` (or ``flink run -py flink_jobs/inference_job.py``); settings
come from ``AIMASS_*`` variables and ``--set section.field=value``.
"""

from __future__ import annotations

import argparse
import sys

from pyflink.common import Configuration
from pyflink.common.typeinfo import Types
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from aimass.kafka_config import job_client_properties
from aimass.settings import Settings
from udfs.batch_infer import BatchInfer
from udfs.decode import DEAD_LETTERS, ERROR_RESULTS, RESULT_ROW, DecodeRequests

#: Row type of the source: the raw record value and its Kafka position.
SOURCE_ROW = Types.ROW_NAMED(
    ["value", "topic", "partition", "offset"],
    [Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.STRING(), Types.INT(), Types.LONG()],
)


def build_pipeline(source: DataStream, settings: Settings) -> tuple[DataStream, DataStream]:
    """Wire route -> key_by -> BatchInfer; returns (results, dead letters) as Row streams."""
    job = settings.job
    decoded = (
        source.process(DecodeRequests(settings), output_type=Types.PICKLED_BYTE_ARRAY())
        .name("decode-validate")
        .uid("decode-validate")
    )
    inferred = (
        decoded.key_by(lambda request: request[0], key_type=Types.STRING())
        .process(BatchInfer(settings), output_type=RESULT_ROW)
        .name("batch-infer")
        .uid("batch-infer")
        .set_parallelism(job.parallelism)
    )
    results = inferred.union(decoded.get_side_output(ERROR_RESULTS))
    dead_letters = decoded.get_side_output(DEAD_LETTERS).union(inferred.get_side_output(DEAD_LETTERS))
    return results, dead_letters


def job_configuration(settings: Settings) -> Configuration:
    """Flink configuration of the job: execution mode, checkpoints, state backend, restarts."""
    job = settings.job
    config = Configuration()
    for key, value in {
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
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": str(job.restart_attempts),
        "restart-strategy.fixed-delay.delay": f"{job.restart_delay_ms} ms",
        # Process mode: bigger bundles and state caches cut the Java<->Python round trips
        # per record (keyed state access is the cost to beat, see DESIGN.md).
        "python.fn-execution.bundle.size": "10000",
        "python.fn-execution.bundle.time": "5",
        "python.state.cache-size": "100000",
        "python.map-state.read-cache-size": "100000",
        "python.map-state.write-cache-size": "100000",
    }.items():
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
