"""Exactly-once under a TaskManager crash: SIGKILL mid-stream, no result lost, none doubled."""

from __future__ import annotations

import threading
import time

import numpy as np
import onnxruntime as ort
import pytest

from aimass.contract.codec import Codec
from aimass.settings import Settings
from aimass.stack import jobs
from aimass.stack.flink import FlinkCluster
from aimass.stack.local import LocalStack
from aimass.tools.traffic import consumer, count_results, make_request, send_paced

pytestmark = pytest.mark.integration


def test_taskmanager_sigkill_mid_stream_loses_and_doubles_nothing(
    test_settings: Settings, local_stack: LocalStack, inference_job: str
) -> None:
    from aimass.tools.demo import load_holdout

    codec = Codec(test_settings.paths.schemas_dir)
    images, _ = load_holdout(test_settings.paths.models_dir)
    n, rate = 2400, 200.0
    requests = [make_request("digits", {"pixels": images[i % len(images) : i % len(images) + 1]}) for i in range(n)]
    by_id = {r.request_id: r for r in requests}
    cons = consumer(test_settings.kafka.bootstrap, test_settings.kafka.results_topic, from_beginning=False)
    sent = threading.Event()

    def send() -> None:
        send_paced(test_settings.kafka.bootstrap, codec, test_settings.kafka.requests_topic, requests, rate)
        sent.set()

    sender = threading.Thread(target=send, daemon=True)
    sender.start()

    arrivals: list[float] = []
    killed: list[float] = []

    def kill_once(answered: int) -> None:
        if not killed and answered >= n // 4:
            killed.append(time.monotonic())
            local_stack.flink.taskmanager(0).kill()  # SIGKILL: no shutdown hooks, open transactions
            local_stack.up()  # a supervisor starts it again

    # Linger after the last result: a duplicate would become visible with one of the next checkpoints.
    results, counts = count_results(cons, codec, set(by_id), timeout_s=240,
                                    linger_s=4 * test_settings.job.checkpoint_interval_ms / 1000, tick=kill_once,
                                    on_result=lambda _: arrivals.append(time.monotonic()))
    cons.close()
    sender.join(timeout=10)

    assert killed, "the TaskManager was never killed: too few results before the kill"
    missing = n - len(results)
    doubled = {i: c for i, c in counts.items() if c > 1}
    assert missing == 0, f"{missing} of {n} requests got no result"
    assert not doubled, f"{len(doubled)} requests got more than one result"
    session = ort.InferenceSession(str(test_settings.paths.models_dir / "digits" / "2" / "model.onnx"))
    pixels = np.concatenate([by_id[i].inputs[0].to_numpy() for i in results])
    labels, probabilities = session.run(["label", "probabilities"], {"pixels": pixels})
    np.testing.assert_array_equal(np.concatenate([r.output("label") for r in results.values()]), labels)
    np.testing.assert_allclose(
        np.concatenate([r.output("probabilities") for r in results.values()]), probabilities, rtol=1e-5, atol=1e-6
    )
    gaps = np.diff(sorted(a for a in arrivals if a >= killed[0] - 1))
    print(f"\nTaskManager killed after {n // 4} results; longest gap without results {gaps.max():.1f} s")

    # Leave the job running for the tests after this one.
    cluster = FlinkCluster(test_settings)
    jobs.wait_running(cluster, inference_job, timeout_s=120)
