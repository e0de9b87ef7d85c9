"""What the job's Python operators carry into the job graph: the settings they use, not the
gateway's token nor the other sections (every byte PyFlink pickles while the graph is built
is looked at)."""

from __future__ import annotations

from typing import Any

import cloudpickle
import pytest

from aimass.settings import AutoscaleSettings, GatewaySettings, Settings, StorageSettings

pytestmark = pytest.mark.pipeline

TOKEN = "tok-graph-41f"  # noqa: S105 - a test value
PROPERTIES = ('security.protocol=SASL_SSL;sasl.mechanism=PLAIN;sasl.jaas.config=x.PlainLoginModule required '
              'username="u" password="pw-graph-7";')


def test_the_pickled_operators_hold_no_gateway_token_and_default_other_sections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pyflink.datastream import StreamExecutionEnvironment

    from flink_jobs.inference_job import CONTROL_ROW, SOURCE_ROW, build_pipeline, operator_settings
    from tests.pipeline.minicluster import minicluster_configuration

    settings = Settings.load(env={
        "AIMASS_GATEWAY_TOKEN": TOKEN, "AIMASS_KAFKA_CLIENT_PROPERTIES": PROPERTIES,
        "AIMASS_AUTOSCALE_MAX_PARALLELISM": "7", "AIMASS_JOB_MAX_PARALLELISM": "64",
        "AIMASS_STORAGE_URI": "s3://bucket-graph-3/state", "AIMASS_STORAGE_S3_ENDPOINT": "http://store-graph-9:8333",
    })
    pickled: list[bytes] = []
    dumps = cloudpickle.dumps

    def recording(obj: Any, *args: Any, **kwargs: Any) -> bytes:
        data = dumps(obj, *args, **kwargs)
        pickled.append(data)
        return data

    monkeypatch.setattr(cloudpickle, "dumps", recording)
    env = StreamExecutionEnvironment.get_execution_environment(minicluster_configuration(settings))
    build_pipeline(env.from_collection([], type_info=SOURCE_ROW), env.from_collection([], type_info=CONTROL_ROW),
                   settings)
    graph = b"".join(pickled)
    assert b"InferBatch" in graph and b"ApplyControl" in graph, "the operators were not pickled here"
    for value in (TOKEN, "bucket-graph-3", "store-graph-9"):
        assert value.encode() not in graph, value
    assert b"pw-graph-7" in graph, "the operators read the control and blob topics with the client properties"

    ops = operator_settings(settings)
    assert ops.gateway == GatewaySettings() and ops.autoscale == AutoscaleSettings()
    assert ops.storage == StorageSettings()
    used = (settings.paths, settings.kafka, settings.job, settings.engine)
    assert (ops.paths, ops.kafka, ops.job, ops.engine) == used
