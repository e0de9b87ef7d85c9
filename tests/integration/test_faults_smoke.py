"""The fault campaign, short version, on the session's stack: TaskManager kills (one aimed at a
checkpoint), a broker stop/start and ~1 % bad records of every kind over a few thousand
requests; exactly-once loses, doubles and gets wrong nothing, and bad input restarts nothing.
(The long versions are ``make faults``.)"""

from __future__ import annotations

import dataclasses
import json

import pytest

from aimass.faults.campaign import Campaign
from aimass.faults.plan import SMOKE
from aimass.settings import Settings
from aimass.stack import jobs
from aimass.stack.local import LocalStack

pytestmark = pytest.mark.integration


def test_kills_and_bad_records_lose_double_and_crash_nothing(
    test_settings: Settings, local_stack: LocalStack, inference_job: str
) -> None:
    assert test_settings.job.delivery == "exactly-once"
    plan = dataclasses.replace(SMOKE, seed=8)
    try:
        report = Campaign(test_settings, local_stack, inference_job, plan, say=print).run()
    finally:
        # Other tests share the job: leave it running whatever happened.
        jobs.wait_running(local_stack.flink, inference_job, timeout_s=180)
    print(json.dumps({k: report[k] for k in ("faults", "recovery_s", "restarts", "oracle")}, indent=1))

    oracle = report["oracle"]
    assert oracle["ok"], oracle["problems"]
    assert oracle["lost"] == 0 and oracle["duplicated_requests"] == 0 and oracle["mismatched"] == 0
    assert oracle["expected"] >= plan.requests and report["sent"]["producer_errors"] == 0
    assert report["sent"]["bad_records"] >= plan.bad_only
    assert all(n > 0 for n in report["sent"]["bad_by_kind"].values()), report["sent"]["bad_by_kind"]
    assert report["sent"]["bad_by_kind"].get("fuzzed", 0) > 0  # mutations no list of kinds foresaw
    kinds = [f["kind"] for f in report["faults"]]
    assert kinds.count("taskmanager-kill") == plan.kills and kinds.count("broker-restart") == plan.broker_restarts
    assert report["bad_input_phase"]["restarts"] == 0 and report["restarts"]["from_bad_input"] == 0
    # No failure anywhere in the campaign (kill windows included) names Python code.
    assert report["restarts"]["failures_from_code"] == 0, report["restarts"]["code_failures"]
    # The kills were felt (the exception history counts failures; numRestarts under-counts).
    assert report["restarts"]["failures_in_fault_windows"] >= 1
