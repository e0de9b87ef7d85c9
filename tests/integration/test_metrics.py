"""The job's metrics through Flink's Prometheus reporter on the real stack: the JobManager and
each TaskManager serve ``/metrics`` on the ports the settings give (listed by ``aimass status``),
and the job's own metrics move with the traffic sent: results by model, version and status,
dead letters by reason, batch sizes, inference times, de-duplicated resubmissions."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from aimass.contract.codec import Codec
from aimass.settings import PROJECT_ROOT, Settings
from aimass.stack.flink import FlinkCluster
from aimass.stack.prometheus import Sample, scrape, total
from aimass.tools.traffic import consumer, count_results, make_request, producer, send

pytestmark = pytest.mark.integration


def _taskmanager_samples(cluster: FlinkCluster) -> list[Sample]:
    return [s for name, url in cluster.metrics_urls().items() if name != "jobmanager" for s in scrape(url)]


def _figures(cluster: FlinkCluster) -> dict[str, float]:
    samples = _taskmanager_samples(cluster)
    return {
        "ok": total(samples, "_results", model="digits", status="OK"),
        "invalid": total(samples, "_results", model="digits", status="INVALID_INPUT"),
        "dl_invalid": total(samples, "_dead_letters", reason="INVALID_INPUT"),
        "dl_undecodable": total(samples, "_dead_letters", reason="UNDECODABLE"),
        "dropped": total(samples, "_dedupDropped"),
        "batches": total(samples, "_batchSize_count"),
        "inference_calls": total(samples, "_inferenceUs_count"),
    }


def test_the_stack_lists_and_serves_its_prometheus_endpoints(test_settings: Settings, inference_job: str) -> None:
    cluster = FlinkCluster(test_settings)
    urls = cluster.metrics_urls()
    assert set(urls) >= {"jobmanager", "taskmanager-0"}, urls
    assert urls["jobmanager"].endswith(f":{test_settings.flink.metrics_port}/metrics")
    assert total(scrape(urls["jobmanager"]), "numRegisteredTaskManagers") >= 1
    done = subprocess.run([str(Path(sys.executable).parent / "aimass"), "status"], capture_output=True, text=True,
                          env={**os.environ, **test_settings.as_env()}, timeout=60, cwd=PROJECT_ROOT, check=False)
    assert f"jobmanager {urls['jobmanager']}" in done.stdout, done.stdout


def test_the_jobs_metrics_count_what_was_sent(test_settings: Settings, inference_job: str, codec: Codec) -> None:
    from aimass.tools.demo import load_holdout

    cluster = FlinkCluster(test_settings)
    images, _ = load_holdout(test_settings.paths.models_dir)
    good = [make_request("digits", {"pixels": images[i:i + 1].astype(np.float32)}) for i in range(60)]
    wrong_shape = [make_request("digits", {"pixels": np.zeros((1, 63), np.float32)}) for _ in range(5)]
    cut = [codec.encode_request(make_request("digits", {"pixels": images[:1].astype(np.float32)}))[:-9]
           for _ in range(3)]
    before = _figures(cluster)
    cons = consumer(test_settings.kafka.bootstrap, test_settings.kafka.results_topic, from_beginning=False)
    prod = producer(test_settings.kafka.bootstrap)
    send(prod, test_settings.kafka.requests_topic,
         [*(codec.encode_request(r) for r in [*good, *wrong_shape]), *cut])
    wanted = {r.request_id for r in [*good, *wrong_shape]}
    results, _ = count_results(cons, codec, wanted, timeout_s=120, linger_s=1)
    assert len(results) == len(wanted)
    send(prod, test_settings.kafka.requests_topic, [codec.encode_request(r) for r in good[:7]])  # resubmitted
    prod.close()
    cons.close()
    # A resubmission is inferred again (the batch step does not know the id was answered) and its
    # result dropped by the de-duplication after it: 60 + 7 OK results computed, 7 dropped.
    expected = {"ok": 60 + 7, "invalid": 5 + 3, "dl_invalid": 5, "dl_undecodable": 3, "dropped": 7}
    deadline = time.monotonic() + 60
    while True:  # the resubmissions pass the job a moment later
        after = _figures(cluster)
        moved = {key: after[key] - before[key] for key in after}
        if all(moved[key] >= value for key, value in expected.items()) or time.monotonic() > deadline:
            break
        time.sleep(1)
    print(f"\nmetrics moved by {moved}")
    for key, value in expected.items():
        assert moved[key] == value, (key, moved)
    assert moved["batches"] >= 1 and moved["inference_calls"] >= 1, moved
    # Every metric the dashboard draws (deploy/grafana/aimass.json) is one the stack exports.
    from aimass.tools.dashboard import PANELS

    exported = {s.name for url in cluster.metrics_urls().values() for s in scrape(url)}
    drawn = {series.metric for panel in PANELS for series in panel.series}
    assert drawn <= exported, drawn - exported


def test_aimass_top_shows_the_traffic_and_quits_on_ctrl_c(test_settings: Settings, inference_job: str,
                                                          codec: Codec) -> None:
    import re
    import signal

    from aimass.tools.demo import load_holdout
    from aimass.tools.traffic import start_paced

    images, _ = load_holdout(test_settings.paths.models_dir)
    requests = [make_request("digits", {"pixels": images[i % 100:i % 100 + 1].astype(np.float32)}) for i in range(1500)]
    sender = start_paced(test_settings.kafka.bootstrap, codec, test_settings.kafka.requests_topic, requests, 150.0)
    env = {**os.environ, **test_settings.as_env(), "COLUMNS": "140", "TERM": "dumb"}
    aimass = str(Path(sys.executable).parent / "aimass")
    once = subprocess.run([aimass, "top", "--once", "--interval", "3"], capture_output=True, text=True, env=env,
                          timeout=120, cwd=PROJECT_ROOT, check=False)
    assert once.returncode == 0, once.stderr
    print(once.stdout)
    rate = re.search(r"requests in /s\s+([\d,]+)", once.stdout)
    assert rate and int(rate.group(1).replace(",", "")) > 0, once.stdout
    assert "batch-infer subtasks" in once.stdout and re.search(r"job [0-9a-f]{32} RUNNING", once.stdout)
    live = subprocess.Popen([aimass, "top", "--interval", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, cwd=PROJECT_ROOT)
    time.sleep(12)  # past its start-up (imports, Kafka clients) on a loaded machine: a few refreshes
    live.send_signal(signal.SIGINT)
    out, err = live.communicate(timeout=30)
    assert live.returncode == 0, (live.returncode, err.decode()[-2000:])
    assert b"requests in /s" in out and b"Traceback" not in err
    sender.join(timeout=30)
