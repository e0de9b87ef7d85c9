"""Protobuf <-> message conversion."""

from __future__ import annotations

import numpy as np
import pytest

from aimass.contract.messages import InferenceResult, Status, Tensor, Timings
from aimass.gateway._gen import inference_pb2 as pb
from aimass.gateway.convert import result_to_proto, status_from_proto, status_to_proto, tensor_from_proto


@pytest.mark.parametrize("status", list(Status))
def test_every_status_has_a_proto_value_and_back(status: Status) -> None:
    assert status_from_proto(status_to_proto(status)) is status


def test_unspecified_status_is_refused() -> None:
    with pytest.raises(ValueError):
        status_from_proto(pb.STATUS_UNSPECIFIED)


def test_tensor_round_trip() -> None:
    original = Tensor.from_numpy("x", np.arange(6, dtype=np.int32).reshape(2, 3))
    proto = pb.Tensor(name="x", dtype="int32", shape=[2, 3], data=original.data)
    assert tensor_from_proto(proto) == original


def test_result_without_optional_fields() -> None:
    result = InferenceResult(request_id="r", model="m", status=Status.UNKNOWN_MODEL, completed_at_ms=5,
                             error="unknown model 'm'", timings=Timings(end_to_end_ms=1.5))
    proto = result_to_proto(result)
    assert (proto.request_id, proto.version, proto.status, proto.error) == (
        "r", "", pb.STATUS_UNKNOWN_MODEL, "unknown model 'm'")
    assert proto.timings.end_to_end_ms == 1.5 and len(proto.outputs) == 0
    assert not proto.HasField("graph")


def test_a_graph_result_carries_its_steps_and_missing_members() -> None:
    from aimass.contract.messages import GraphOutcome, StepTiming

    steps = (StepTiming("root/v1", "digits", "1", "OK", 8, 0.25, 1.5),)
    result = InferenceResult("r", "vote", Status.OK, 5, "1", graph=GraphOutcome(True, ("root/v2",), steps))
    proto = result_to_proto(result)
    assert proto.graph.partial and list(proto.graph.missing) == ["root/v2"]
    (step,) = proto.graph.steps
    assert (step.step, step.model, step.version, step.status, step.batch_size) == ("root/v1", "digits", "1", "OK", 8)
