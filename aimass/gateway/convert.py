"""Protocol buffers <-> the data contract's messages (``aimass.contract.messages``)."""

from __future__ import annotations

from typing import cast

from aimass.contract.messages import InferenceResult, Status, Tensor
from aimass.gateway._gen import inference_pb2 as pb


def tensor_from_proto(t: pb.Tensor) -> Tensor:
    """A wire tensor (checked later, with every other input, by the client's validation)."""
    return Tensor(t.name, t.dtype, tuple(int(d) for d in t.shape), bytes(t.data))


def tensor_to_proto(t: Tensor) -> pb.Tensor:
    """The protobuf form of a tensor."""
    return pb.Tensor(name=t.name, dtype=t.dtype, shape=list(t.shape), data=bytes(t.data))


def status_to_proto(status: Status) -> pb.Status:
    """``Status.OK`` -> ``STATUS_OK`` and so on."""
    return cast(pb.Status, pb.Status.Value(f"STATUS_{Status(status).value}"))


def status_from_proto(value: int) -> Status:
    """``STATUS_OK`` -> ``Status.OK`` and so on.

    Raises:
        ValueError: STATUS_UNSPECIFIED or an unknown number.
    """
    name = pb.Status.Name(value)
    return Status(name.removeprefix("STATUS_"))


def result_to_proto(r: InferenceResult) -> pb.Result:
    """The protobuf form of a result (absent optional fields become empty strings)."""
    return pb.Result(
        request_id=r.request_id or "",
        model=r.model,
        version=r.version or "",
        status=status_to_proto(r.status),
        outputs=[tensor_to_proto(t) for t in r.outputs],
        error=r.error or "",
        timings=pb.Timings(
            queued_ms=r.timings.queued_ms,
            batch_size=r.timings.batch_size,
            inference_ms=r.timings.inference_ms,
            end_to_end_ms=r.timings.end_to_end_ms,
        ),
        completed_at_ms=r.completed_at_ms,
        route=_route(r),
        graph=_graph(r),
    )


def _graph(r: InferenceResult) -> pb.GraphOutcome | None:
    if r.graph is None:
        return None
    steps = [pb.StepTiming(step=t.step, model=t.model, version=t.version or "", status=t.status,
                           batch_size=t.batch_size, inference_ms=t.inference_ms, finished_ms=t.finished_ms)
             for t in r.graph.steps]
    return pb.GraphOutcome(partial=r.graph.partial, missing=list(r.graph.missing), steps=steps)


def _route(r: InferenceResult) -> pb.Route | None:
    if r.route is None:
        return None
    route = pb.Route(rule=r.route.rule, alias=r.route.alias or "", bucket=r.route.bucket,
                     primary_version=r.route.primary_version or "")
    if r.route.agrees is not None:
        route.agrees = r.route.agrees
    return route
