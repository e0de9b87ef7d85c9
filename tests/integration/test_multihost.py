"""Several hosts on this machine: the object store, three Kafka brokers, the JobManager and two
TaskManagers, each in a network namespace of its own with its own address (tests/integration/
netns.py, made here and removed at the end). The TaskManagers see neither the project's
``models/`` nor another host's state: models reach them through the control topic's blob topic,
checkpoints go to the object store. The Kafka cluster has three brokers (replication factor 3,
``min.insync.replicas`` 2).

Under traffic, every process of one TaskManager host is killed: the job recovers from the object
store on the other host, exactly-once holds. Then one broker host is killed mid-run: the job
carries on with two, exactly-once holds.

A machine that does not let the test make namespaces fails it with the reason (root or
CAP_NET_ADMIN + CAP_SYS_ADMIN are needed); it is not skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aimass.contract.codec import Codec
from aimass.control.admin import ControlAdmin
from aimass.settings import PROJECT_ROOT, Settings
from aimass.stack import jobs
from aimass.stack.flink import FlinkCluster
from aimass.stack.kafka import ClusterNode, new_cluster_id
from aimass.stack.objectstore import ObjectStore
from aimass.tools.traffic import consumer, count_results, make_request, send_paced
from tests.integration.netns import Host, NamespaceError, Network

pytestmark = pytest.mark.integration

OFFSET = int(os.environ.get("AIMASS_TEST_PORT_OFFSET", "0"))
PREFIX = f"ams{OFFSET // 100}"
SUBNET = f"10.231.{40 + OFFSET // 100}"
ROOT = PROJECT_ROOT / ".state" / f"multihost-{OFFSET}"
BROKERS = ("kafka1", "kafka2", "kafka3")
TASKMANAGERS = ("tm1", "tm2")
HOSTS = ("store", *BROKERS, "jm", *TASKMANAGERS)
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "aimass-multihost", "AWS_SECRET_ACCESS_KEY": "aimass-multihost-secret"}
STORE_PORT, KAFKA_PORT, CONTROLLER_PORT = 8333, 9092, 9093


@dataclass
class Cluster:
    """The hosts and what runs on them."""

    net: Network
    hosts: dict[str, Host]
    settings: Settings  # the JobManager host's: what clients and the job use
    brokers: dict[str, ClusterNode]
    taskmanagers: dict[str, FlinkCluster]
    jobmanager: FlinkCluster
    store: ObjectStore
    hidden: list[Path]
    """What the TaskManager hosts do not see."""

    def start_taskmanager(self, name: str) -> None:
        self.taskmanagers[name].write_files()
        self.taskmanagers[name].start_taskmanager(0)

    def registered(self) -> set[str]:
        return {tm["id"] for tm in self.jobmanager.rest("/taskmanagers", timeout=5)["taskmanagers"]}

    def wait_registered(self, count: int, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if len(self.registered()) >= count:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"{count} TaskManagers did not register within {timeout_s:.0f}s; logs under {ROOT}")


def _env(hosts: dict[str, Host]) -> dict[str, str]:
    return {
        "AIMASS_PATHS_JARS_DIR": str(PROJECT_ROOT / ".state" / "jars"),
        "AIMASS_KAFKA_BOOTSTRAP_SERVERS": ",".join(f"{hosts[b].address}:{KAFKA_PORT}" for b in BROKERS),
        "AIMASS_KAFKA_PORT": str(KAFKA_PORT),
        "AIMASS_KAFKA_CONTROLLER_PORT": str(CONTROLLER_PORT),
        "AIMASS_KAFKA_SECURE_PORT": "0",
        "AIMASS_KAFKA_HEAP": "384m",
        "AIMASS_FLINK_HOST": hosts["jm"].address,
        # Off loopback, on the test's private namespaces only (no other peer can reach them).
        "AIMASS_FLINK_UNSAFE_EXPOSE": "true",
        "AIMASS_FLINK_REST_PORT": "8081",
        "AIMASS_FLINK_RPC_PORT": "6123",
        "AIMASS_FLINK_BLOB_PORT": "6124",
        "AIMASS_FLINK_TASKMANAGER_RPC_PORTS": "6200-6299",
        "AIMASS_FLINK_TASKMANAGERS": "1",
        "AIMASS_FLINK_SLOTS": "1",  # parallelism 2 then needs both hosts: a killed one always runs tasks
        "AIMASS_JOB_NAME": "aimass-inference-multihost",
        "AIMASS_JOB_PARALLELISM": "2",
        "AIMASS_JOB_TRANSACTIONAL_ID_PREFIX": f"aimass-multihost{OFFSET}",
        "AIMASS_JOB_CONSUMER_GROUP": f"aimass-multihost{OFFSET}",
        "AIMASS_JOB_SYNC_MODELS_DIR": "false",
        "AIMASS_STORAGE_URI": "s3://aimass-multihost/state",
        "AIMASS_STORAGE_S3_ENDPOINT": f"http://{hosts['store'].address}:{STORE_PORT}",
    }


def _settings(env: dict[str, str], name: str, **extra: str) -> Settings:
    return Settings.load(env={**env, "AIMASS_PATHS_STATE_DIR": str(ROOT / name), **extra})


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    net = Network(PREFIX, SUBNET)
    try:
        hosts = net.create(HOSTS)
    except NamespaceError as exc:
        net.remove()
        pytest.fail(f"cannot make the test's hosts: {exc}")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in CREDENTIALS.items():
            patch.setenv(key, value)
        try:
            yield _start(net, hosts)
        finally:
            net.remove()


def _start(net: Network, hosts: dict[str, Host]) -> Cluster:
    shutil.rmtree(ROOT, ignore_errors=True)
    env = _env(hosts)
    store = ObjectStore(_settings(env, "store", AIMASS_KAFKA_HOST=hosts["store"].address,
                                  AIMASS_STORAGE_LOCAL_PORT=str(STORE_PORT)), launcher=hosts["store"].launcher())
    store.start()
    voters = ",".join(f"{i}@{hosts[b].address}:{CONTROLLER_PORT}" for i, b in enumerate(BROKERS, start=1))
    cluster_id = new_cluster_id()
    brokers = {b: ClusterNode(_settings(env, b, AIMASS_KAFKA_HOST=hosts[b].address), node_id=i, voters=voters,
                              cluster_id=cluster_id, replication=3, launcher=hosts[b].launcher())
               for i, b in enumerate(BROKERS, start=1)}
    for broker in brokers.values():
        broker.start()
    store.wait_healthy()
    for broker in brokers.values():
        broker.wait_healthy()
    brokers["kafka1"].ensure_topics(replication=3)
    settings = _settings(env, "jm")
    jobmanager = FlinkCluster(settings, launcher=hosts["jm"].launcher())
    jobmanager.write_files()
    jobmanager.start_jobmanager()
    # What a TaskManager on another machine would not see: the models folder, the other hosts' state.
    hidden = [settings.paths.models_dir, *(ROOT / h for h in HOSTS if h not in TASKMANAGERS)]
    taskmanagers = {tm: FlinkCluster(_settings(env, tm), launcher=hosts[tm].launcher(hide=hidden),
                                     taskmanager_host=hosts[tm].address) for tm in TASKMANAGERS}
    cluster = Cluster(net, hosts, settings, brokers, taskmanagers, jobmanager, store, hidden)
    for tm in TASKMANAGERS:
        cluster.start_taskmanager(tm)
    cluster.wait_registered(len(TASKMANAGERS))
    return cluster


@pytest.fixture(scope="module")
def job(cluster: Cluster, codec: Codec) -> str:
    settings = cluster.settings
    job_id = jobs.submit(settings)
    with ControlAdmin(settings) as admin:  # the models travel through Kafka, not a shared folder
        admin.deploy(settings.paths.models_dir / "digits" / "2")
    probe = _requests(settings, 1)
    send_paced(settings.kafka.bootstrap, codec, settings.kafka.requests_topic, probe, 10.0)
    cons = consumer(settings.kafka.bootstrap, settings.kafka.results_topic)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # resend until the deploy has reached every subtask
        results, _ = count_results(cons, codec, {r.request_id for r in probe}, timeout_s=5, linger_s=0)
        if results and next(iter(results.values())).status.name == "OK":
            break
        probe = _requests(settings, 1)
        send_paced(settings.kafka.bootstrap, codec, settings.kafka.requests_topic, probe, 10.0)
    else:
        raise AssertionError("the model deployed through the blob topic never served a request")
    cons.close()
    return job_id


def _requests(settings: Settings, n: int) -> list:  # type: ignore[type-arg]
    from aimass.tools.demo import load_holdout

    images, _ = load_holdout(settings.paths.models_dir)
    return [make_request("digits", {"pixels": images[i % len(images): i % len(images) + 1]}) for i in range(n)]


def _exactly_once_under(cluster: Cluster, codec: Codec, fault: str, n: int = 1200, rate: float = 150.0) -> None:
    """Send ``n`` requests at ``rate``; a quarter in, kill every process of host ``fault``; every
    request must get exactly one OK result."""
    settings = cluster.settings
    requests = _requests(settings, n)
    cons = consumer(settings.kafka.bootstrap, settings.kafka.results_topic, from_beginning=False)
    sender = threading.Thread(target=send_paced, daemon=True,
                              args=(settings.kafka.bootstrap, codec, settings.kafka.requests_topic, requests, rate))
    sender.start()
    killed: list[int] = []

    def kill_once(answered: int) -> None:
        if not killed and answered >= n // 4:
            killed.extend(cluster.hosts[fault].kill_everything() or [-1])

    results, counts = count_results(cons, codec, {r.request_id for r in requests}, timeout_s=300,
                                    linger_s=4 * settings.job.checkpoint_interval_ms / 1000, tick=kill_once)
    cons.close()
    sender.join(timeout=30)
    assert killed and killed != [-1], f"nothing was running on {fault} to kill"
    missing = n - len(results)
    assert missing == 0, f"{missing} of {n} requests got no result after {fault} was killed"
    assert not [i for i, c in counts.items() if c > 1], "a request got more than one result"
    statuses = {r.status.name for r in results.values()}
    assert statuses == {"OK"}, statuses


def test_a_user_who_may_not_make_namespaces_gets_the_reason() -> None:
    """What the fixture turns into a failure (not a skip) on a machine without the privileges:
    run the same code as an unprivileged user (nobody) and read its message."""
    with tempfile.TemporaryDirectory() as folder:  # pytest's tmp_path is not readable by nobody
        tmp_path = Path(folder)
        tmp_path.chmod(0o755)
        shutil.copy(Path(__file__).with_name("netns.py"), tmp_path / "netns.py")
        (tmp_path / "netns.py").chmod(0o644)
        done = _run_unprivileged(tmp_path)
    assert "Operation not permitted" in done.stdout and "need root or CAP_NET_ADMIN" in done.stdout, done
    Network("amsnopriv", "10.231.99").remove()


def _run_unprivileged(folder: Path) -> subprocess.CompletedProcess[str]:
    code = ("from netns import Network, NamespaceError\n"
            "try:\n    Network('amsnopriv', '10.231.99').create(['a'])\n"
            "except NamespaceError as exc:\n    print(exc)\n")
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c",
                           code], cwd=folder, capture_output=True, text=True, timeout=60, check=False)


def test_taskmanager_hosts_see_no_models_and_no_other_state(cluster: Cluster) -> None:
    probe = "import os, sys; print(sorted(os.listdir(sys.argv[1])), sorted(os.listdir(sys.argv[2])))"
    done = cluster.hosts["tm1"].run([sys.executable, "-c", probe, str(cluster.settings.paths.models_dir),
                                     str(ROOT / "jm")], hide=cluster.hidden)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[] []", done.stdout
    assert any((cluster.settings.paths.models_dir / "digits").iterdir())  # while the test process sees them
    # Each host has its own address; the JobManager sees the TaskManagers at theirs.
    listed = cluster.jobmanager.rest("/taskmanagers")["taskmanagers"]
    addresses = {tm["path"].split("@")[-1].split(":")[0] for tm in listed}
    assert addresses == {cluster.hosts[t].address for t in TASKMANAGERS}, listed


def test_a_taskmanager_host_killed_under_traffic_loses_and_doubles_nothing(
    cluster: Cluster, job: str, codec: Codec
) -> None:
    jobs.wait_running(cluster.jobmanager, job, timeout_s=120)
    _exactly_once_under(cluster, codec, "tm2")
    restored = cluster.jobmanager.rest(f"/jobs/{job}/checkpoints")["latest"]["restored"]
    assert restored is not None and str(restored["external_path"]).startswith(cluster.settings.checkpoint_uri)
    cluster.start_taskmanager("tm2")  # the host comes back
    cluster.wait_registered(len(TASKMANAGERS))
    jobs.wait_running(cluster.jobmanager, job, timeout_s=120)


def test_a_broker_host_killed_mid_run_loses_and_doubles_nothing(cluster: Cluster, job: str, codec: Codec) -> None:
    _exactly_once_under(cluster, codec, "kafka3")
    assert cluster.jobmanager.rest(f"/jobs/{job}")["state"] == "RUNNING"
    cluster.brokers["kafka3"].start()
    cluster.brokers["kafka3"].wait_healthy()


def test_a_savepoint_on_the_store_restores_the_state_on_a_new_submission(
    cluster: Cluster, job: str, codec: Codec
) -> None:
    settings = cluster.settings
    jobs.wait_running(cluster.jobmanager, job, timeout_s=120)
    first = _requests(settings, 100)
    cons = consumer(settings.kafka.bootstrap, settings.kafka.results_topic, from_beginning=False)
    send_paced(settings.kafka.bootstrap, codec, settings.kafka.requests_topic, first, 100.0)
    results, _ = count_results(cons, codec, {r.request_id for r in first}, timeout_s=120, linger_s=0)
    assert len(results) == len(first)
    location = jobs.savepoint(cluster.jobmanager, settings, job, stop=True)
    assert location.startswith(settings.savepoint_uri), location
    restored = jobs.submit(settings, savepoint=location)
    assert restored != job
    # The same ids again, and new ones: the de-duplication state came back with the savepoint.
    later = _requests(settings, 100)
    send_paced(settings.kafka.bootstrap, codec, settings.kafka.requests_topic, [*first, *later], 100.0)
    # The resubmitted ids never complete the set: wait long enough for the new ones, then linger.
    results, counts = count_results(cons, codec, {r.request_id for r in [*first, *later]}, timeout_s=45,
                                    linger_s=4 * settings.job.checkpoint_interval_ms / 1000)
    cons.close()
    assert {r.request_id for r in later} <= set(results), "a new request got no result after the restore"
    answered_again = [r.request_id for r in first if counts[r.request_id]]
    assert not answered_again, f"{len(answered_again)} resubmitted requests were answered again"
