"""Configuration faults: what ``Settings.validate`` and the model repository refuse, and how.

tests/unit/test_settings.py already checks, through ``Settings.load`` and the environment,
that a parallelism of 200 (above the default maximum of 128), a transaction timeout of one hour
and an empty transactional-id prefix are refused. This file adds ``validate()`` on settings
built in code, the boundaries (what must still be accepted), the message naming both knobs,
and a broken model among good ones at start-up (``InferenceEngine.warm_up``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from aimass.contract.codec import Codec
from aimass.contract.messages import DeadLetter, Reason
from aimass.serving.engine import InferenceEngine
from aimass.serving.models import ModelRepository
from aimass.serving.sessions import SessionCache
from aimass.settings import EngineSettings, JobSettings, KafkaSettings, Settings, SettingsError
from tests.onnx_models import write_model


def settings(**job: object) -> Settings:
    return Settings(job=JobSettings(**job))  # type: ignore[arg-type]


def test_transaction_timeout_above_the_broker_maximum_is_refused_naming_both() -> None:
    bad = Settings(kafka=KafkaSettings(transaction_max_timeout_ms=60_000),
                   job=JobSettings(transaction_timeout_ms=60_001))
    with pytest.raises(SettingsError) as caught:
        bad.validate()
    message = str(caught.value)
    assert "AIMASS_JOB_TRANSACTION_TIMEOUT_MS=60001" in message
    assert "AIMASS_KAFKA_TRANSACTION_MAX_TIMEOUT_MS=60000" in message
    dataclasses.replace(bad, job=JobSettings(transaction_timeout_ms=60_000)).validate()  # equal is fine


def test_missing_transactional_id_prefix_is_refused_only_in_exactly_once() -> None:
    with pytest.raises(SettingsError, match="AIMASS_JOB_TRANSACTIONAL_ID_PREFIX"):
        settings(transactional_id_prefix="").validate()
    settings(transactional_id_prefix="", delivery="at-least-once").validate()


@pytest.mark.parametrize(("parallelism", "max_parallelism"), [(9, 8), (0, 8), (129, 128), (-1, 128)])
def test_parallelism_outside_one_to_max_parallelism_is_refused(parallelism: int, max_parallelism: int) -> None:
    with pytest.raises(SettingsError) as caught:
        settings(parallelism=parallelism, max_parallelism=max_parallelism).validate()
    assert f"AIMASS_JOB_PARALLELISM={parallelism}" in str(caught.value)
    assert f"AIMASS_JOB_MAX_PARALLELISM={max_parallelism}" in str(caught.value)


@pytest.mark.parametrize(("parallelism", "max_parallelism"), [(1, 8), (8, 8), (128, 128)])
def test_parallelism_up_to_max_parallelism_is_accepted(parallelism: int, max_parallelism: int) -> None:
    settings(parallelism=parallelism, max_parallelism=max_parallelism).validate()


def test_a_custom_max_parallelism_from_the_environment_bounds_parallelism() -> None:
    with pytest.raises(SettingsError, match="must be between 1 and AIMASS_JOB_MAX_PARALLELISM=8"):
        Settings.load(env={"AIMASS_JOB_PARALLELISM": "9", "AIMASS_JOB_MAX_PARALLELISM": "8"})


def test_model_that_does_not_load_is_reported_by_file_while_the_others_serve(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_model(root, "good", "1")
    broken_onnx = write_model(root, "broken", "1", onnx_model=b"\x08\x01garbage, not a protobuf")
    broken_meta = write_model(root, "badmeta", "1")
    (broken_meta / "model.json").write_text(json.dumps({"inputs": "not a list"}))
    engine = InferenceEngine(ModelRepository(root, rescan_interval_s=0), SessionCache(EngineSettings(use_gpu=False)),
                             JobSettings())
    problems = engine.warm_up()
    assert len(problems) == 2
    assert any(str(broken_onnx / "model.onnx") in p and "cannot load" in p for p in problems)
    assert any(str(broken_meta / "model.json") in p and "'inputs'" in p for p in problems)
    # The good model still resolves and runs.
    spec = engine.repository.resolve("good")
    session = engine.sessions.get(spec)
    assert session.run(None, {"x": np.ones((2, 4), np.float32)})[0].shape == (2, 3)


def test_dead_letter_of_the_largest_accepted_record_fits_the_sink() -> None:
    """The requests topic refuses records above ``request_record_limit``; the dead letter of the
    largest record it accepts must fit the sinks' ``max.request.size`` (``output_record_limit``),
    or the sink would fail the job on it at every replay."""
    job = JobSettings()
    largest_value = job.request_record_limit - 60  # a record batch with one record, no key
    message = f"record of {largest_value} bytes exceeds the limit of {job.max_payload_bytes} bytes"
    dead = Codec().encode_dead_letter(
        DeadLetter(bytes(largest_value), "aimass.requests", 3, 123_456_789, Reason.OVERSIZED, message,
                   1_700_000_000_000, "0b8e7d2c-7f7e-4a55-9a58-1d1c7b9b0a11")
    )
    assert len(dead) + 200 <= job.output_record_limit  # + the producer's record overhead


def test_kafka_client_properties_pass_through_and_bad_entries_are_named() -> None:
    raw = "security.protocol=SSL; ssl.truststore.location=/t.jks;"
    settings = Settings.load(env={"AIMASS_KAFKA_CLIENT_PROPERTIES": raw})
    assert settings.kafka.client_property_pairs() == [
        ("security.protocol", "SSL"),
        ("ssl.truststore.location", "/t.jks"),
    ]
    assert "SSL" not in repr(settings.kafka)  # may hold credentials
    with pytest.raises(SettingsError, match="is not key=value"):
        Settings.load(env={"AIMASS_KAFKA_CLIENT_PROPERTIES": "security.protocol"})
    with pytest.raises(SettingsError, match="may not set 'group.id'"):
        Settings.load(env={"AIMASS_KAFKA_CLIENT_PROPERTIES": "group.id=other"})
    with pytest.raises(SettingsError, match="is not key=value"):
        Settings.load(env={"AIMASS_KAFKA_CLIENT_PROPERTIES": "sasl.jaas.config=x 'quoted'"})
