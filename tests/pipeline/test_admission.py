"""Admission on the MiniCluster (``job.overload=shed``): a burst far beyond
``job.max_waiting_per_model`` with a window of one batch: every request gets exactly one
result, OK or OVERLOADED (written by the Java scheduler, decoded here by the Python codec),
and the OVERLOADED ones leave no dead letter."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from aimass.contract.codec import Codec
from aimass.contract.messages import Status
from aimass.settings import Settings
from aimass.tools.traffic import make_request, now_ms
from tests.pipeline.minicluster import READY, control_rows, minicluster_configuration
from tests.pipeline.test_pipeline import _bytes

pytestmark = pytest.mark.pipeline


def test_a_burst_beyond_the_admission_limit_is_answered_overloaded_and_nothing_is_lost() -> None:
    from pyflink.common import Row
    from pyflink.common.typeinfo import Types
    from pyflink.datastream import RuntimeExecutionMode, StreamExecutionEnvironment

    from aimass.tools.demo import build_demo_models, load_holdout
    from flink_jobs.inference_job import CONTROL_ROW, SOURCE_ROW, build_pipeline

    settings = Settings.load(env={}, overrides={
        "job.parallelism": "1", "job.inflight_batches": "1", "job.max_waiting_per_model": "4", "job.overload": "shed",
        "job.max_delay_ms": "0"})
    build_demo_models(settings.paths.models_dir)
    codec = Codec(settings.paths.schemas_dir)
    images, _ = load_holdout(settings.paths.models_dir)
    requests = [make_request("digits", {"pixels": images[i % 50: i % 50 + 1]}) for i in range(400)]
    rows = [Row(codec.encode_request(r), "requests", 0, i, now_ms()) for i, r in enumerate(requests)]
    env = StreamExecutionEnvironment.get_execution_environment(minicluster_configuration(settings))
    env.set_runtime_mode(RuntimeExecutionMode.STREAMING)
    results, dead_letters, _, _ = build_pipeline(
        env.from_collection(rows, type_info=SOURCE_ROW),
        env.from_collection(control_rows(settings), type_info=CONTROL_ROW), settings, READY)
    tagged = Types.TUPLE([Types.STRING(), Types.PRIMITIVE_ARRAY(Types.BYTE())])
    out = results.map(lambda r: ("result", r[1]), output_type=tagged).union(
        dead_letters.map(lambda r: ("dead", r[0]), output_type=tagged))
    collected = list(out.execute_and_collect())

    answers = [codec.decode_result(_bytes(v)) for tag, v in collected if tag == "result"]
    assert not [v for tag, v in collected if tag == "dead"], "OVERLOADED leaves no dead letter"
    assert Counter(a.request_id for a in answers) == Counter(r.request_id for r in requests)
    statuses = Counter(a.status for a in answers)
    assert set(statuses) <= {Status.OK, Status.OVERLOADED}, statuses
    assert statuses[Status.OVERLOADED] > 0, f"a burst of 400 never overflowed 4 waiting: {statuses}"
    assert statuses[Status.OK] >= 5, statuses
    overloaded = next(a for a in answers if a.status is Status.OVERLOADED)
    assert overloaded.model == "digits" and overloaded.version is None and not overloaded.outputs
    assert overloaded.error and "job.max_waiting_per_model" in overloaded.error
    assert overloaded.timings.end_to_end_ms >= 0
    ok = [a for a in answers if a.status is Status.OK]
    by_id = {r.request_id: r for r in requests}
    first = ok[0]
    assert first.output("probabilities").shape[0] == by_id[first.request_id].rows
    assert np.isfinite(first.output("probabilities")).all()
