"""Shared fixtures. The real local stack is started once per test session, on its own ports
and state folder so that a user's running demo stack is left alone, and stopped at the end."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import settings as hypothesis_settings

from aimass.contract.codec import Codec
from aimass.settings import Settings
from aimass.stack.isolated import TEST_PORTS, isolated_env
from tests.stacks import running_stack

# Property tests judge answers, not speed: these machines are shared and noisy, and a per-example
# deadline there fails a correct test now and then.
hypothesis_settings.register_profile("aimass", deadline=None)
hypothesis_settings.load_profile("aimass")

# Several test sessions can share a machine: AIMASS_TEST_PORT_OFFSET moves every port and the
# state folder of this session's stack (e.g. 100 -> Kafka on 29192, REST on 18181).
_OFFSET = int(os.environ.get("AIMASS_TEST_PORT_OFFSET", "0"))


TEST_ENV = isolated_env("test", TEST_PORTS, _OFFSET, {
    "AIMASS_FLINK_SLOTS": "2",
    "AIMASS_JOB_PARALLELISM": "2",
    "AIMASS_JOB_NAME": "aimass-inference-test",
    "AIMASS_JOB_TRANSACTIONAL_ID_PREFIX": f"aimass-test{_OFFSET}",
    "AIMASS_JOB_CONSUMER_GROUP": f"aimass-test{_OFFSET}",
    "AIMASS_KAFKA_ACLS": "true",  # on the SASL_SSL listener: tests/integration/test_secure_kafka.py
})


@pytest.fixture(scope="session")
def test_settings() -> Settings:
    """Settings of the integration-test stack."""
    return Settings.load(env=TEST_ENV)


@pytest.fixture(scope="session")
def codec(test_settings: Settings) -> Codec:
    """The codec of the data contract, from the project's schemas."""
    return Codec(test_settings.paths.schemas_dir)


@pytest.fixture(scope="session")
def local_stack(test_settings: Settings) -> Iterator[object]:
    """The real Kafka broker and Flink cluster, up for the whole session."""
    with running_stack(test_settings) as stack:
        yield stack


@pytest.fixture(scope="session")
def inference_job(local_stack: object, test_settings: Settings) -> str:
    """The inference job, submitted once (exactly-once, parallelism 2); returns its job id."""
    from aimass.stack import jobs

    return jobs.submit(test_settings)


@pytest.fixture
def unique(request: pytest.FixtureRequest) -> str:
    """A name unique to this test: its node name plus a uuid."""
    return f"{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"
