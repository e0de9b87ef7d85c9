"""`aimass up` after a TaskManager died is ready only once the new TaskManager has registered:
not while the dead one is still listed (it stays until its heartbeat times out)."""

from __future__ import annotations

import time

import pytest

from aimass.settings import Settings
from aimass.stack import jobs
from aimass.stack.flink import FlinkCluster
from aimass.stack.local import LocalStack

pytestmark = pytest.mark.integration


def test_up_after_a_taskmanager_died_waits_for_the_new_ones_registration(
    test_settings: Settings, local_stack: LocalStack, inference_job: str
) -> None:
    cluster = FlinkCluster(test_settings)
    before = {tm["id"] for tm in cluster.rest("/taskmanagers")["taskmanagers"]}
    local_stack.flink.taskmanager(0).kill()  # SIGKILL: still registered for up to heartbeat.timeout
    started = time.monotonic()
    local_stack.up()
    took = time.monotonic() - started
    live = cluster.live_resource_ids()
    assert live, "the TaskManagers' resource ids were not recorded"
    listed = {tm["id"] for tm in cluster.rest("/taskmanagers")["taskmanagers"]}
    assert live <= listed, f"up returned with {sorted(live - listed)} not registered (listed: {sorted(listed)})"
    assert live - before, "no new TaskManager was started"
    print(f"\nup after a TaskManager SIGKILL: ready in {took:.1f} s, registered {sorted(listed)}")
    jobs.wait_running(cluster, inference_job, timeout_s=120)  # the job recovers for the tests after this one
