"""``aimass submit``: settings reach ``flink run`` through its environment, never its command
line, and what it prints back is shown with secrets masked."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from aimass.settings import Settings
from aimass.stack import jobs, redact
from aimass.stack.flink import FlinkCluster
from aimass.stack.procs import StackError

PASSWORD = "pw-Zq81x"  # noqa: S105 - a test value
JAAS = f'org.apache.kafka.common.security.plain.PlainLoginModule required username="aimass" password="{PASSWORD}";'
PROPERTIES = f"security.protocol=SASL_SSL;sasl.mechanism=PLAIN;sasl.jaas.config={JAAS};ssl.truststore.password=ts-77Qa"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.load(env={"AIMASS_PATHS_STATE_DIR": str(tmp_path), "AIMASS_KAFKA_CLIENT_PROPERTIES": PROPERTIES,
                              "AIMASS_GATEWAY_TOKEN": "tok-9c2e"})


class FakeRun:
    """``subprocess.run`` of ``flink run``: records the call, answers ``output`` with ``returncode``."""

    def __init__(self, output: str, returncode: int = 1) -> None:
        self.output, self.returncode = output, returncode
        self.argv: list[str] = []
        self.env: dict[str, str] = {}

    def __call__(self, argv: list[str], env: dict[str, str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.argv, self.env = argv, env
        return subprocess.CompletedProcess(argv, self.returncode, self.output, "")


@pytest.fixture
def flink_run(monkeypatch: pytest.MonkeyPatch) -> FakeRun:
    fake = FakeRun("")
    monkeypatch.setattr(FlinkCluster, "running_job", lambda self, name: None)
    monkeypatch.setattr("aimass.stack.flink.subprocess.run", fake)
    return fake


def test_overrides_travel_in_the_environment_not_on_the_command_line(
    settings: Settings, flink_run: FakeRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    flink_run.output = "Job has been submitted with JobID 0123456789abcdef0123456789abcdef\n"
    flink_run.returncode = 0
    monkeypatch.setattr(jobs, "wait_running", lambda *args, **kwargs: {})
    secret = "security.protocol=SASL_SSL;sasl.mechanism=PLAIN;sasl.jaas.config=other password=\"pw-over-5\";"
    job_id = jobs.submit(settings, {"job.delivery": "at-least-once", "kafka.client_properties": secret})
    assert job_id == "0123456789abcdef0123456789abcdef"
    assert not [a for a in flink_run.argv if "--set" in a or "pw-over-5" in a or "at-least-once" in a], flink_run.argv
    assert flink_run.env["AIMASS_JOB_DELIVERY"] == "at-least-once"
    assert flink_run.env["AIMASS_KAFKA_CLIENT_PROPERTIES"] == secret


def test_a_failed_flink_run_is_shown_with_secrets_masked(settings: Settings, flink_run: FakeRun) -> None:
    flink_run.output = (
        "org.apache.flink.table.api.ValidationException: Unable to create a source for reading table\n"
        f"'properties.sasl.jaas.config'='{JAAS}'\n"
        f"Caused by: LoginException: password=\"{PASSWORD}\" refused; ssl.truststore.password=ts-77Qa\n"
        "gateway token tok-9c2e\n"
    )
    with pytest.raises(StackError) as failed:
        jobs.submit(settings)
    message = str(failed.value)
    for secret in (PASSWORD, "ts-77Qa", "tok-9c2e", "PlainLoginModule"):
        assert secret not in message, secret
    assert "Unable to create a source for reading table" in message and redact.MASK in message


def test_secret_shapes_are_masked_even_when_they_are_not_ours(settings: Settings) -> None:
    text = "sasl.jaas.config=x.PlainLoginModule required password=\"other-1\"; token: tk-2 ok"
    masked = redact.mask(text, Settings())
    assert "other-1" not in masked and "tk-2" not in masked and masked.endswith(" ok")


def test_ordinary_output_is_left_alone(settings: Settings) -> None:
    text = "Job has been submitted with JobID 0123456789abcdef0123456789abcdef\nmodels: digits v1, v2"
    assert redact.mask(text, settings) == text
