"""Shared fixtures. The real local stack is started once per test session, on its own ports
and state folder so that a user's running demo stack is left alone, and stopped at the end."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from aimass.settings import PROJECT_ROOT, Settings

TEST_ENV = {
    "AIMASS_PATHS_STATE_DIR": str(PROJECT_ROOT / ".state" / "test"),
    "AIMASS_PATHS_JARS_DIR": str(PROJECT_ROOT / ".state" / "jars"),
    "AIMASS_KAFKA_PORT": "29092",
    "AIMASS_KAFKA_CONTROLLER_PORT": "29093",
    "AIMASS_FLINK_REST_PORT": "18081",
    "AIMASS_FLINK_RPC_PORT": "26123",
    "AIMASS_FLINK_BLOB_PORT": "26124",
    "AIMASS_FLINK_TASKMANAGER_RPC_PORTS": "26200-26299",
    "AIMASS_FLINK_SLOTS": "2",
    "AIMASS_JOB_PARALLELISM": "2",
    "AIMASS_JOB_NAME": "aimass-inference-test",
    "AIMASS_JOB_TRANSACTIONAL_ID_PREFIX": "aimass-test",
    "AIMASS_JOB_CONSUMER_GROUP": "aimass-test",
}


@pytest.fixture(scope="session")
def test_settings() -> Settings:
    """Settings of the integration-test stack."""
    return Settings.load(env=TEST_ENV)


@pytest.fixture(scope="session")
def local_stack(test_settings: Settings) -> Iterator[object]:
    """The real Kafka broker and Flink cluster, up for the whole session."""
    from aimass.demo import build_demo_models
    from aimass.stack.local import LocalStack

    build_demo_models(test_settings.paths.models_dir)
    stack = LocalStack(test_settings, say=lambda m: print(f"[stack] {m}"))
    stack.down(purge=True)
    try:
        stack.up()
        yield stack
    finally:
        stack.down()
    leftover = [p.name for p in stack.processes() if p.pid() is not None]
    assert not leftover, f"processes left running after down: {leftover}"


@pytest.fixture(scope="session")
def inference_job(local_stack: object, test_settings: Settings) -> str:
    """The inference job, submitted once (exactly-once, parallelism 2); returns its job id."""
    from aimass.stack import jobs

    return jobs.submit(test_settings)


@pytest.fixture
def unique(request: pytest.FixtureRequest) -> str:
    """A name unique to this test: its node name plus a uuid."""
    return f"{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"
