"""The local Flink cluster's exposure: refused off loopback unless protected or opted into, and
a browser origin that is its own, not ``*``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aimass.settings import PROJECT_ROOT, Settings, SettingsError
from aimass.stack.flink import FlinkCluster
from aimass.stack.local import LocalStack
from aimass.stack.procs import StackError


def settings(tmp_path: Path, **flink: str) -> Settings:
    env = {f"AIMASS_FLINK_{key.upper()}": value for key, value in flink.items()}
    return Settings.load(env={"AIMASS_PATHS_STATE_DIR": str(tmp_path / "state"), **env})


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "flink.example.com", "::"])  # noqa: S104
def test_up_refuses_a_flink_host_off_loopback_with_the_reason_and_the_fix(tmp_path: Path, host: str) -> None:
    stack = LocalStack(settings(tmp_path, host=host), say=lambda _: None)
    with pytest.raises(StackError) as refused:
        stack.up()
    message = str(refused.value)
    assert "run any code" in message and "POST /jobs" in message and "no authentication" in message
    assert "AIMASS_FLINK_SSL=true" in message and "AIMASS_FLINK_UNSAFE_EXPOSE=true" in message
    assert not (tmp_path / "state" / "run").exists(), "nothing may start before the refusal"


def test_aimass_up_refuses_0_0_0_0_from_the_command_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "AIMASS_FLINK_HOST": "0.0.0.0",  # noqa: S104
           "AIMASS_PATHS_STATE_DIR": str(tmp_path / "state")}
    done = subprocess.run([sys.executable, "-m", "aimass", "up"], env=env, cwd=PROJECT_ROOT,  # noqa: S603
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "refusing to start Flink on 0.0.0.0" in done.stderr + done.stdout


@pytest.mark.parametrize("flink", [{"unsafe_expose": "true"}, {"ssl": "true"}])
def test_an_off_loopback_host_is_allowed_with_ssl_or_the_explicit_opt_in(tmp_path: Path, flink: dict[str, str]) -> None:
    FlinkCluster(settings(tmp_path, host="0.0.0.0", **flink)).check_exposure()  # noqa: S104


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.5", "localhost", "::1"])
def test_loopback_hosts_start_as_before(tmp_path: Path, host: str) -> None:
    FlinkCluster(settings(tmp_path, host=host)).check_exposure()


def test_a_taskmanager_host_off_loopback_is_refused_too(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="10.9.0.3"):
        FlinkCluster(settings(tmp_path), taskmanager_host="10.9.0.3").check_exposure()


def test_connecting_to_a_remote_cluster_is_no_start_and_stays_allowed() -> None:
    remote = Settings.load(env={"AIMASS_FLINK_HOST": "jobmanager"})  # e.g. docker-compose's job-submitter
    assert remote.flink.rest_url == "http://jobmanager:8081"


def test_the_allowed_origin_is_the_rest_apis_own_not_a_wildcard(tmp_path: Path) -> None:
    config = FlinkCluster(settings(tmp_path, rest_port="18281")).config()
    assert config["web.access-control-allow-origin"] == "http://127.0.0.1:18281"


def test_the_allowed_origin_is_a_setting(tmp_path: Path) -> None:
    config = FlinkCluster(settings(tmp_path, allowed_origin="https://ops.example.com/")).config()
    assert config["web.access-control-allow-origin"] == "https://ops.example.com"


@pytest.mark.parametrize("origin", ["*", "https://ops.example.com/flink"])
def test_a_wildcard_or_a_path_is_no_origin(origin: str) -> None:
    with pytest.raises(SettingsError, match="AIMASS_FLINK_ALLOWED_ORIGIN"):
        Settings.load(env={"AIMASS_FLINK_ALLOWED_ORIGIN": origin})
