"""The control topic on the real stack: a version deployed through Kafka (bytes in chunks on the
blob topic), a 90/10 split under traffic, a shadow, bad commands, promote."""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from aimass.contract.codec import Codec
from aimass.contract.messages import InferenceRequest, InferenceResult, Status
from aimass.control.admin import AdminError, ControlAdmin
from aimass.control.commands import Command, Promote, SetAlias, SetShadow, SetSplit
from aimass.control.routing import split_bucket
from aimass.settings import Settings
from aimass.stack.flink import FlinkCluster
from aimass.tools.traffic import (
    collect,
    consumer,
    count_results,
    make_request,
    producer,
    send,
    serve,
    start_paced,
)
from tests.onnx_models import copy_versions

pytestmark = pytest.mark.integration


def _copy_versions(settings: Settings, root: Path) -> tuple[str, Path]:
    """digits 1 and 2 copied under a new model name into ``root``, outside the model folder
    (so only the blob topic or a file:// deploy can bring them to the TaskManagers)."""
    name = f"canary-{uuid.uuid4().hex[:8]}"
    return name, copy_versions(settings.paths.models_dir, root, name)


@pytest.fixture
def versions(test_settings: Settings, tmp_path: Path) -> tuple[str, Path]:
    return _copy_versions(test_settings, tmp_path)


def _restarts(settings: Settings, job_id: str) -> int:
    metrics = FlinkCluster(settings).rest(f"/jobs/{job_id}/metrics?get=numRestarts")
    return int(float(metrics[0]["value"])) if metrics else 0


def _serve(settings: Settings, codec: Codec, requests: list[InferenceRequest]) -> dict[str, InferenceResult]:
    return serve(settings.kafka, codec, requests)


def _check_against_onnx_runtime(root: Path, requests: list[InferenceRequest],
                                results: dict[str, InferenceResult]) -> None:
    sessions = {v: ort.InferenceSession(str(root / v / "model.onnx")) for v in ("1", "2")}
    for request in requests:
        result = results[request.request_id]
        assert result.status is Status.OK, result.error
        assert result.version is not None
        expected = sessions[result.version].run(None, {t.name: t.to_numpy() for t in request.inputs})
        for output, value in zip(sessions[result.version].get_outputs(), expected, strict=True):
            np.testing.assert_allclose(result.output(output.name), value, rtol=1e-5, atol=1e-6)


def test_deploy_split_shadow_promote_under_traffic(
    test_settings: Settings, inference_job: str, codec: Codec, versions: tuple[str, Path]
) -> None:
    from aimass.tools.demo import load_holdout

    name, root = versions
    images, _ = load_holdout(test_settings.paths.models_dir)
    restarts = _restarts(test_settings, inference_job)
    with ControlAdmin(test_settings, activation_ms=500) as admin:
        started = time.monotonic()
        admin.deploy(root / "1")  # uploaded to the blob topic: the TaskManagers fetch it from there
        time.sleep(0.5)  # a request that reaches the job before its model's first deploy: UNKNOWN_MODEL
        first = _serve(test_settings, codec, [make_request(name, {"pixels": images[:1]})])
        deploy_to_result_s = time.monotonic() - started
        assert [(r.version, r.error) for r in first.values()] == [("1", None)]
        print(f"deploy (upload + publish) to first result: {deploy_to_result_s:.2f} s")

        admin.publish(SetAlias(name, "stable", "1"))
        admin.deploy(root / "2")
        with pytest.raises(AdminError, match="sum to 0.9, not 1"):
            admin.publish(SetSplit(name, (("1", 0.8), ("2", 0.1))))
        admin.publish(SetSplit(name, (("1", 0.9), ("2", 0.1))))
        time.sleep(1.0)  # past the split's effective time

        requests = [make_request(name, {"pixels": images[i % len(images) : i % len(images) + 1]}) for i in range(800)]
        results = _serve(test_settings, codec, requests)
        assert len(results) == len(requests)
        _check_against_onnx_runtime(root, requests, results)
        share = sum(r.version == "2" for r in results.values()) / len(results)
        assert abs(share - 0.1) < 4 * math.sqrt(0.1 * 0.9 / len(results)), share  # binomial bounds
        for request in requests:
            result = results[request.request_id]
            assert result.route is not None and result.route.rule == "split"
            assert result.route.bucket == split_bucket(request.request_id)
            assert result.version == ("1" if result.route.bucket < 9000 else "2")

        # A shadow: half the traffic also runs on version 2; its results never reach the results topic.
        admin.publish(SetShadow(name, "2", 0.5))
        time.sleep(1.0)
        shadow_cons = consumer(test_settings.kafka, test_settings.kafka.shadow_topic, from_beginning=False)
        results_cons = consumer(test_settings.kafka, test_settings.kafka.results_topic, from_beginning=False)
        mirrored = [make_request(name, {"pixels": images[i : i + 1]}) for i in range(200)]
        served = _serve(test_settings, codec, mirrored)
        shadows = collect(shadow_cons, codec.decode_result, lambda got: len(got) >= 60, timeout_s=60)
        time.sleep(2.0)
        on_results = collect(results_cons, codec.decode_result, lambda _: False, timeout_s=3)
        shadow_cons.close()
        results_cons.close()
        assert 60 <= len(shadows) <= 140, len(shadows)  # ~90: half of the 180 that version 1 serves
        ids = {r.request_id for r in mirrored}
        assert all(s.request_id in ids and s.route is not None and s.route.rule == "shadow" for s in shadows)
        assert all(s.version == "2" and s.route.primary_version == served[s.request_id].version  # type: ignore[union-attr]
                   for s in shadows)
        assert all(s.route.agrees is not None for s in shadows)  # type: ignore[union-attr]
        assert Counter(r.request_id for r in on_results if r.request_id in ids) == Counter(ids)  # once each
        assert all(r.route is None or r.route.rule != "shadow" for r in on_results)
        counts = admin.shadow_counts()[name]
        assert counts.agree + counts.disagree >= len(shadows)

        # Bad commands: a dead letter each with the reason, the routing unchanged, no restart.
        prod = producer(test_settings.kafka)
        bad_split = Command(SetSplit(name, (("1", 0.5), ("7", 0.5))), int(time.time() * 1000))
        send(prod, test_settings.kafka.control_topic, [b"garbage", admin.codec.encode(bad_split)],
             [b"x", bad_split.key.encode()])
        prod.close()
        deadline = time.monotonic() + 30
        letters = []
        while time.monotonic() < deadline and not any(d.request_id == bad_split.command_id for d in letters):
            time.sleep(1)
            letters = admin.refusals(50)
        assert any(d.original == b"garbage" for d in letters)
        mine = [d for d in letters if d.request_id == bad_split.command_id]
        assert mine and "no version '7'" in mine[0].message
        again = _serve(test_settings, codec, requests[:50])  # resubmitted ids: the same versions
        assert not again or all(r.version == results[i].version for i, r in again.items())
        later = [make_request(name, {"pixels": images[:1]}) for _ in range(200)]
        later_results = _serve(test_settings, codec, later)
        assert {r.route.rule for r in later_results.values()} == {"split"}  # type: ignore[union-attr]

        # Promote: every request that names no version gets 2, by the default rule.
        admin.publish(Promote(name, "2"))
        time.sleep(1.0)
        promoted = _serve(test_settings, codec, [make_request(name, {"pixels": images[:1]}) for _ in range(50)])
        assert {(r.version, r.route.rule) for r in promoted.values()} == {("2", "default")}  # type: ignore[union-attr]
    assert _restarts(test_settings, inference_job) == restarts


def test_a_taskmanager_killed_during_a_switch_loses_doubles_and_misroutes_nothing(
    test_settings: Settings, local_stack: Any, inference_job: str, codec: Codec, versions: tuple[str, Path]
) -> None:
    from aimass.tools.demo import load_holdout

    name, root = versions
    images, _ = load_holdout(test_settings.paths.models_dir)
    with ControlAdmin(test_settings, activation_ms=0) as admin:
        admin.deploy(root / "1", upload_bytes=False)
        admin.deploy(root / "2", upload_bytes=False)
        admin.publish(SetAlias(name, "stable", "1"))
    n, rate = 1800, 150.0
    requests = [make_request(name, {"pixels": images[i % 100 : i % 100 + 1]}) for i in range(n)]
    created = {r.request_id: r.created_at_ms for r in requests}
    logged = consumer(test_settings.kafka, test_settings.kafka.requests_topic, from_beginning=False)
    cons = consumer(test_settings.kafka, test_settings.kafka.results_topic, from_beginning=False)
    sender = start_paced(test_settings.kafka, codec, test_settings.kafka.requests_topic, requests, rate)
    switched: list[int] = []

    def switch_and_kill(answered: int) -> None:
        if not switched and answered >= n // 4:
            with ControlAdmin(test_settings, activation_ms=500) as admin:
                switched.append(admin.publish(SetSplit(name, (("1", 0.9), ("2", 0.1)))).effective_ms)
            local_stack.flink.taskmanager(0).kill()  # SIGKILL during the switch
            local_stack.up()

    results, counts = count_results(cons, codec, set(created), timeout_s=240,
                                    linger_s=4 * test_settings.job.checkpoint_interval_ms / 1000, tick=switch_and_kill)
    cons.close()
    sender.join(timeout=10)
    # Each request's Kafka timestamp: what the routing goes by.
    stamped: dict[str, int] = {}
    for _ in range(100):
        for records in logged.poll(timeout_ms=500).values():
            for record in records:
                rid = codec.peek_request_id(record.value)
                if rid in created:
                    stamped[rid] = record.timestamp
        if len(stamped) == n:
            break
    logged.close()
    assert switched, "the split was never published: too few results before it"
    switch_at = switched[0]
    assert len(results) == n, f"{n - len(results)} requests got no result"
    assert not [i for i, c in counts.items() if c > 1], "a request got two results"
    assert len(stamped) == n
    _check_against_onnx_runtime(root, requests, results)
    for rid, result in results.items():  # exactly as the routing in effect at its timestamp says
        assert result.route is not None
        if stamped[rid] < switch_at:
            assert (result.route.rule, result.version) == ("default", "1"), (rid, stamped[rid], result.route)
        else:
            bucket = split_bucket(rid)
            assert (result.route.rule, result.route.bucket) == ("split", bucket), (rid, stamped[rid], result.route)
            assert result.version == ("1" if bucket < 9000 else "2")
    after = [rid for rid in results if stamped[rid] >= switch_at]
    assert len(after) > n // 3
    share = sum(results[rid].version == "2" for rid in after) / len(after)
    assert abs(share - 0.1) < 4 * math.sqrt(0.1 * 0.9 / len(after)), share
