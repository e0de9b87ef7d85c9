"""Settings: defaults, environment variables, overrides and refused combinations."""

from __future__ import annotations

import pytest

from aimass.settings import Settings, SettingsError


def test_environment_variables_override_defaults() -> None:
    settings = Settings.load(env={"AIMASS_FLINK_REST_PORT": "8082", "AIMASS_JOB_DELIVERY": "at-least-once"})
    assert settings.flink.rest_port == 8082
    assert settings.job.delivery == "at-least-once"


def test_overrides_win_over_environment() -> None:
    settings = Settings.load(env={"AIMASS_JOB_PARALLELISM": "2"}, overrides={"job.parallelism": "3"})
    assert settings.job.parallelism == 3


def test_as_env_round_trips() -> None:
    settings = Settings.load(env={"AIMASS_KAFKA_PORT": "29092", "AIMASS_ENGINE_USE_GPU": "false"})
    assert Settings.load(env=settings.as_env()) == settings


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AIMASS_JOB_DELIVERY": "twice"}, "expected one of exactly-once, at-least-once"),
        ({"AIMASS_KAFKA_PORT": "x"}, "AIMASS_KAFKA_PORT='x' is not a valid int"),
        ({"AIMASS_JOB_PARALLELISM": "200"}, "must be between 1 and AIMASS_JOB_MAX_PARALLELISM=128"),
        ({"AIMASS_JOB_TRANSACTION_TIMEOUT_MS": "3600000"}, "exceeds the broker maximum"),
        ({"AIMASS_JOB_TRANSACTIONAL_ID_PREFIX": ""}, "exactly-once delivery needs"),
        ({"AIMASS_KAFKA_BOOTSTRAP_SERVERS": "kafka-0:9092,kafka-1"}, "'kafka-1' is not host:port"),
        ({"AIMASS_JOB_TOLERABLE_FAILED_CHECKPOINTS": "-1"}, "must be >= 0"),
        ({"AIMASS_STORAGE_URI": "gs://bucket/x"}, "expected s3://bucket"),
        ({"AIMASS_STORAGE_URI": "s3://b", "AIMASS_STORAGE_S3_ENDPOINT": "127.0.0.1:9000"}, "expected http://host:port"),
        ({"AIMASS_STORAGE_LOCAL_PORT": "47300"}, "set AIMASS_STORAGE_URI=s3://"),
    ],
)
def test_unusable_values_are_refused_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.load(env=env)


def test_a_retired_setting_left_set_is_refused_naming_what_to_set_instead() -> None:
    with pytest.raises(SettingsError, match="AIMASS_GATEWAY_MAX_PAYLOAD_BYTES .* set AIMASS_JOB_MAX_PAYLOAD_BYTES"):
        Settings.load(env={"AIMASS_GATEWAY_MAX_PAYLOAD_BYTES": "65536"})
    with pytest.raises(SettingsError, match="no longer a setting"):
        Settings.load(env={}, overrides={"gateway.max_payload_bytes": "65536"})
    assert Settings.load(env={"AIMASS_JOB_MAX_PAYLOAD_BYTES": "65536"}).job.max_payload_bytes == 65536


@pytest.mark.parametrize("name", ["use_gpu", "intra_op_threads", "model_cache_dir", "model_load_timeout_s"])
def test_the_engine_knobs_moved_to_their_own_section(name: str) -> None:
    old, new = f"AIMASS_JOB_{name.upper()}", f"AIMASS_ENGINE_{name.upper()}"
    with pytest.raises(SettingsError, match=f"{old} .* set {new}"):
        Settings.load(env={old: "1"})
    assert new in Settings().as_env() and not hasattr(Settings().job, name)


def test_a_kafka_cluster_is_reached_through_its_bootstrap_servers() -> None:
    assert Settings.load(env={"AIMASS_KAFKA_PORT": "29092"}).kafka.bootstrap == "127.0.0.1:29092"
    brokers = "kafka-0.kafka:9092,kafka-1.kafka:9092,[fd00::3]:9092"
    assert Settings.load(env={"AIMASS_KAFKA_BOOTSTRAP_SERVERS": brokers}).kafka.bootstrap == brokers


def test_checkpoints_follow_the_storage_uri() -> None:
    local = Settings.load(env={"AIMASS_PATHS_STATE_DIR": "/srv/aimass"})
    assert local.checkpoint_uri == "file:///srv/aimass/checkpoints"
    assert local.savepoint_uri == "file:///srv/aimass/savepoints"
    s3 = Settings.load(env={"AIMASS_STORAGE_URI": "s3://ckpt/prod/"})
    assert (s3.checkpoint_uri, s3.savepoint_uri) == ("s3://ckpt/prod/checkpoints", "s3://ckpt/prod/savepoints")
    assert s3.storage.is_s3 and not local.storage.is_s3


def test_the_checkpoint_outage_tolerated_ends_within_half_the_transaction_timeout() -> None:
    assert Settings().job.checkpoint_failures_tolerated == 12  # 12 x 21 s < 300 s
    short = Settings.load(env={"AIMASS_JOB_TRANSACTION_TIMEOUT_MS": "60000"}).job
    assert short.checkpoint_failures_tolerated == 1  # 30 s // 21 s
    loose = Settings.load(env={"AIMASS_JOB_TRANSACTION_TIMEOUT_MS": "60000", "AIMASS_JOB_DELIVERY": "at-least-once"})
    assert loose.job.checkpoint_failures_tolerated == 12  # no transactions to outlive
