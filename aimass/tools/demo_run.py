"""The demo behind ``make run``: start everything, send held-out digits, print the results."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from aimass.contract.codec import Codec
from aimass.contract.messages import Status
from aimass.settings import Settings
from aimass.tools.traffic import collect_results, consumer, make_request, producer, send_requests


def run_demo(settings: Settings, count: int, say: Callable[[str], None] = print) -> int:
    """Bring the stack up, submit the job, send ``count`` digits, print results and accuracy."""
    from aimass.stack import jobs
    from aimass.stack.local import LocalStack
    from aimass.tools.demo import build_demo_models, load_holdout

    started = time.monotonic()
    say("building demo models (skipped when present) ...")
    build_demo_models(settings.paths.models_dir)
    LocalStack(settings, say).up()
    say("submitting the inference job (first time takes ~20 s) ...")
    job_id = jobs.submit(settings)
    say(f"job {job_id} RUNNING")

    images, labels = load_holdout(settings.paths.models_dir)
    count = min(count, len(labels))
    codec = Codec(settings.paths.schemas_dir)
    requests = [make_request("digits", {"pixels": images[i : i + 1]}) for i in range(count)]
    cons = consumer(settings.kafka, settings.kafka.results_topic, from_beginning=False)
    prod = producer(settings.kafka)
    sent_at = time.monotonic()
    send_requests(prod, codec, settings.kafka.requests_topic, requests)
    prod.close()
    say(f"sent {count} requests to {settings.kafka.requests_topic}; reading {settings.kafka.results_topic} ...")

    first: list[float] = []

    def on_result(_: object) -> None:
        if not first:
            first.append(time.monotonic())

    wanted = {r.request_id for r in requests}
    results = collect_results(cons, codec, wanted, timeout_s=120, on_result=on_result)
    cons.close()

    truth = {r.request_id: int(labels[i]) for i, r in enumerate(requests)}
    print(f"\n{'request id':<38}{'status':<10}{'version':<9}{'pred':>5}{'true':>6}{'batch':>7}{'e2e ms':>9}")
    correct = ok = 0
    for index, request in enumerate(requests):
        result = results.get(request.request_id)
        if result is None:
            continue
        pred = int(np.asarray(result.output("label")).reshape(-1)[0]) if result.status is Status.OK else -1
        ok += result.status is Status.OK
        correct += pred == truth[request.request_id]
        if index < 12 or index >= count - 3:
            print(f"{request.request_id:<38}{result.status.value:<10}{result.version or '-':<9}{pred:>5}"
                  f"{truth[request.request_id]:>6}{result.timings.batch_size:>7}{result.timings.end_to_end_ms:>9.1f}")
        elif index == 12:
            print(f"{'...':<38}")
    missing = count - len(results)
    print()
    say(f"results: {len(results)}/{count} ({ok} OK, {missing} missing); "
        f"held-out accuracy {correct / max(1, count):.3f} on {count} digits")
    if first:
        say(f"first result {first[0] - sent_at:.1f}s after sending; "
            f"{time.monotonic() - started:.0f}s since the command started")
    say(f"watch the job in the Flink web UI: {settings.flink.rest_url}/#/job/running/{job_id}/overview")
    say("stop everything with: make down   (or .venv/bin/aimass down)")
    return 0 if missing == 0 else 1
