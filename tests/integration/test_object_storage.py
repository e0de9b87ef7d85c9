"""Checkpoints and savepoints on object storage: a stack of its own whose checkpoints go to a
real S3-compatible store (SeaweedFS, built by ``make seaweedfs``, started by the stack), through
Flink's S3 file system plugin resolved by pom.xml.

A TaskManager SIGKILLed under traffic: the job restores from the store, exactly-once holds. The
store stopped under traffic: the job keeps running, checkpoints fail and ``aimass status`` says
so; the store back: every result arrives, once. A store that refuses the credentials or does not
answer is refused by ``aimass up`` before anything starts.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from aimass.contract.codec import Codec
from aimass.settings import PROJECT_ROOT, Settings
from aimass.stack import jobs, storage
from aimass.stack.flink import FlinkCluster
from aimass.stack.isolated import S3_TEST_PORTS, Ports, isolated_env
from aimass.stack.local import LocalStack
from aimass.tools.traffic import consumer, count_results, make_request, send_paced
from tests.stacks import running_stack

pytestmark = pytest.mark.integration

OFFSET = int(os.environ.get("AIMASS_TEST_PORT_OFFSET", "0"))
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "aimass-test", "AWS_SECRET_ACCESS_KEY": "aimass-test-secret-0"}
ENV = isolated_env("s3-test", S3_TEST_PORTS, OFFSET, {
    "AIMASS_JOB_NAME": "aimass-inference-s3-test",
    "AIMASS_JOB_PARALLELISM": "2",
    "AIMASS_JOB_TRANSACTIONAL_ID_PREFIX": f"aimass-s3-test{OFFSET}",
    "AIMASS_JOB_CONSUMER_GROUP": f"aimass-s3-test{OFFSET}",
})
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def s3_settings() -> Settings:
    return Settings.load(env=ENV)


@pytest.fixture(scope="module")
def s3_stack(s3_settings: Settings) -> Iterator[LocalStack]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in CREDENTIALS.items():
            patch.setenv(key, value)  # the Flink processes and the store take them from here
        with running_stack(s3_settings, "s3-stack") as stack:
            yield stack


@pytest.fixture(scope="module")
def s3_job(s3_stack: LocalStack, s3_settings: Settings) -> str:
    return jobs.submit(s3_settings)


def _objects(settings: Settings, under: str) -> list[str]:
    from pyarrow import fs

    bucket, prefix = storage.bucket_and_prefix(under)
    s3 = storage.filesystem(settings.storage)
    return [info.path for info in s3.get_file_info(fs.FileSelector(f"{bucket}/{prefix}", recursive=True))]


def _aimass(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "aimass"), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=PROJECT_ROOT, check=False)


def _requests(settings: Settings, n: int) -> list:  # type: ignore[type-arg]
    from aimass.tools.demo import load_holdout

    images, _ = load_holdout(settings.paths.models_dir)
    return [make_request("digits", {"pixels": images[i % len(images): i % len(images) + 1]}) for i in range(n)]


def _checkpoints(settings: Settings, job_id: str) -> dict:  # type: ignore[type-arg]
    return dict(FlinkCluster(settings).rest(f"/jobs/{job_id}/checkpoints"))


def _restarts(cluster: FlinkCluster, job_id: str) -> int:
    (metric,) = cluster.rest(f"/jobs/{job_id}/metrics?get=numRestarts")
    return int(float(metric["value"]))


def test_up_refuses_refused_credentials_and_an_unreachable_store(
    s3_stack: LocalStack, s3_settings: Settings, tmp_path: Path
) -> None:
    # Another stack (own ports and state folder) pointed at the running store, no local store of its own.
    other = isolated_env("s3-refused", Ports(kafka=29592, rest=18581, flink=26700), OFFSET)
    base = {**os.environ, **other, "AIMASS_STORAGE_URI": s3_settings.storage.uri,
            "AIMASS_STORAGE_S3_ENDPOINT": s3_settings.storage.s3_endpoint}
    wrong = _aimass({**base, "AWS_ACCESS_KEY_ID": "aimass-test", "AWS_SECRET_ACCESS_KEY": "not-the-secret"}, "up")
    assert wrong.returncode == 2, wrong.stdout + wrong.stderr
    assert f"{s3_settings.storage.s3_endpoint} refused the S3 credentials" in wrong.stderr
    assert "not-the-secret" not in wrong.stdout + wrong.stderr
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    unreachable = _aimass({**base, **CREDENTIALS, "AIMASS_STORAGE_S3_ENDPOINT": dead}, "up")
    assert unreachable.returncode == 2
    assert f"cannot reach the object store at {dead}" in unreachable.stderr
    run_dir = Path(other["AIMASS_PATHS_STATE_DIR"]) / "run"
    assert not list(run_dir.glob("*.pid")) if run_dir.exists() else True  # nothing was started


def test_a_killed_taskmanager_recovers_from_the_store_exactly_once(
    s3_stack: LocalStack, s3_settings: Settings, s3_job: str, codec: Codec
) -> None:
    settings = s3_settings
    n = 1600
    requests = _requests(settings, n)
    cons = consumer(settings.kafka.bootstrap, settings.kafka.results_topic, from_beginning=False)
    sender = threading.Thread(target=send_paced, daemon=True,
                              args=(settings.kafka.bootstrap, codec, settings.kafka.requests_topic, requests, 200.0))
    sender.start()
    killed: list[float] = []

    def kill_once(answered: int) -> None:
        if not killed and answered >= n // 4:
            completed = _checkpoints(settings, s3_job)["counts"]["completed"]
            assert completed > 0, "no checkpoint completed on the store before the kill"
            killed.append(time.monotonic())
            s3_stack.flink.taskmanager(0).kill()
            s3_stack.up()

    results, counts = count_results(cons, codec, {r.request_id for r in requests}, timeout_s=240,
                                    linger_s=4 * settings.job.checkpoint_interval_ms / 1000, tick=kill_once)
    cons.close()
    sender.join(timeout=10)
    assert killed, "the TaskManager was never killed"
    assert len(results) == n, f"{n - len(results)} of {n} requests got no result"
    assert not [i for i, c in counts.items() if c > 1], "a request got more than one result"
    assert all(r.status.name == "OK" for r in results.values())

    jobs.wait_running(FlinkCluster(settings), s3_job, timeout_s=120)
    restored = _checkpoints(settings, s3_job)["latest"]["restored"]
    assert restored is not None and str(restored["external_path"]).startswith(settings.checkpoint_uri), restored
    written = _objects(settings, f"{settings.checkpoint_uri}/{s3_job}")
    assert any(path.endswith("/_metadata") for path in written), written[:10]


def test_the_job_serves_on_while_the_store_is_down_and_status_says_so(
    s3_stack: LocalStack, s3_settings: Settings, s3_job: str, codec: Codec
) -> None:
    settings = s3_settings
    assert s3_stack.objectstore is not None
    cluster = FlinkCluster(settings)
    jobs.wait_running(cluster, s3_job, timeout_s=120)
    failed_before = _checkpoints(settings, s3_job)["counts"]["failed"]
    restarts_before = _restarts(cluster, s3_job)
    requests = _requests(settings, 300)
    cons = consumer(settings.kafka.bootstrap, settings.kafka.results_topic, from_beginning=False)
    s3_stack.objectstore.process.stop()
    try:
        send_paced(settings.kafka.bootstrap, codec, settings.kafka.requests_topic, requests, 150.0)
        deadline = time.monotonic() + 60
        while _checkpoints(settings, s3_job)["counts"]["failed"] < failed_before + 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        status = _aimass({**os.environ, **ENV, **CREDENTIALS}, "status", timeout=60)
        assert cluster.rest(f"/jobs/{s3_job}")["state"] == "RUNNING"
    finally:
        s3_stack.objectstore.start()
        s3_stack.objectstore.wait_healthy()
    print(status.stdout)
    assert "failed" in status.stdout and "FAILING since the last completed one" in status.stdout, status.stdout
    results, counts = count_results(cons, codec, {r.request_id for r in requests}, timeout_s=180,
                                    linger_s=4 * settings.job.checkpoint_interval_ms / 1000)
    cons.close()
    assert len(results) == len(requests), f"{len(requests) - len(results)} results missing after the store came back"
    assert not [i for i, c in counts.items() if c > 1]
    assert _restarts(cluster, s3_job) == restarts_before, "the job restarted during the outage"
    labels = np.array([int(r.output("label")[0]) for r in results.values()])
    assert labels.min() >= 0 and labels.max() <= 9


def test_a_savepoint_is_written_to_the_store(s3_stack: LocalStack, s3_settings: Settings, s3_job: str) -> None:
    cluster = FlinkCluster(s3_settings)
    trigger = cluster.rest(f"/jobs/{s3_job}/savepoints", method="POST",
                           body={"target-directory": s3_settings.savepoint_uri, "cancel-job": False})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = cluster.rest(f"/jobs/{s3_job}/savepoints/{trigger['request-id']}")
        if state["status"]["id"] == "COMPLETED":
            break
        time.sleep(0.5)
    operation = state.get("operation", {})
    assert "failure-cause" not in operation, operation
    location = str(operation["location"])
    assert location.startswith(s3_settings.savepoint_uri), location
    assert any(path.endswith("/_metadata") for path in _objects(s3_settings, location))
