"""The inference core: validate requests, run batches through ONNX Runtime, split the answers.

No Flink or Kafka here: the PyFlink functions build an :class:`InferenceEngine` in ``open()``
and hand it requests; the gateway and the tests do the same. Work is per request (a few
numpy calls each), never per row, so multi-row requests cost what one-row requests do.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import onnxruntime as ort

from aimass.contract.messages import (
    DTYPES,
    InferenceRequest,
    InferenceResult,
    Reason,
    Route,
    Status,
    Tensor,
    Timings,
    clip,
)
from aimass.contract.rules import Refusal
from aimass.serving.fit import input_problem, ordered
from aimass.serving.models import ModelError, ModelSpec
from aimass.serving.sessions import SessionCache
from aimass.settings import JobSettings


class Models(Protocol):
    """Where the engine finds a model version: the local :class:`~aimass.serving.models.ModelRepository`
    (tools, tests) or, in the job, the versions deployed through the control topic
    (:class:`aimass.control.store.ModelStore`)."""

    def resolve(self, name: str, version: str | None = None) -> ModelSpec: ...
    def names(self) -> list[str]: ...
    def versions(self, name: str) -> list[str]: ...
class InferenceEngine:
    """Validates requests and serves batches of them, grouped by model version."""

    def __init__(self, repository: Models, sessions: SessionCache, settings: JobSettings) -> None:
        self.repository = repository
        self.sessions = sessions
        self.settings = settings

    def check(self, req: InferenceRequest, now_ms: int) -> Refusal | None:
        """Why ``req`` cannot be served, before it is buffered; None when it can.

        Checks that the model and version resolve, that the inputs are exactly the declared
        ones with their dtypes, ranks and fixed dimensions, one row or more, the same row
        count in every input, and that the deadline has not passed. Never raises: a failure
        of the check itself is this request's INTERNAL_ERROR, not the operator's.
        """
        found = self.admit(req, now_ms)
        return found if isinstance(found, Refusal) else None

    def admit(self, req: InferenceRequest, now_ms: int, version: str | None = None) -> ModelSpec | Refusal:
        """The spec that serves ``req`` (at ``version`` when given: the version the job's routing
        chose; else the one the request names), or why none does (see :meth:`check`); pass the
        specs of admitted requests to :meth:`run` to skip checking them again."""
        try:
            try:
                spec = self.repository.resolve(req.model, req.version if version is None else version)
            except ModelError as exc:
                return Refusal(exc.reason, exc.message)
            if req.deadline_ms is not None and now_ms > req.deadline_ms:
                return Refusal(Reason.DEADLINE_EXCEEDED,
                               f"deadline passed {now_ms - req.deadline_ms} ms before the request ran")
            problem = input_problem(spec, req.inputs)
        except Exception as exc:  # noqa: BLE001 - a bug here must fail one request, not the job
            return Refusal(Reason.INTERNAL_ERROR,
                           f"request could not be checked: {type(exc).__name__}: {clip(str(exc), 200)}")
        return spec if problem is None else Refusal(Reason.INVALID_INPUT, problem)

    def warm_up(self) -> list[str]:
        """Open a session for every model version in the repository; returns the problems.

        Called when an operator opens, so the first request does not pay for session builds
        and a broken model file is logged at start. A version that fails is reported, not
        raised: the other models keep serving, and requests for it get a typed error.
        """
        problems = []
        for name in self.repository.names():
            for version in self.repository.versions(name):
                try:
                    spec = self.repository.resolve(name, version)
                    if spec.graph is None:  # a graph has no session: its steps do
                        self.sessions.get(spec)
                except ModelError as exc:
                    problems.append(exc.message)
        return problems

    def batch_limits(self, model: str, version: str | None) -> tuple[int, int]:
        """``(max_batch_size, max_delay_ms)`` of a model, from its metadata or the job settings."""
        try:
            spec = self.repository.resolve(model, version)
        except ModelError:
            return self.settings.max_batch_size, self.settings.max_delay_ms
        return (
            self.settings.max_batch_size if spec.max_batch_size is None else spec.max_batch_size,
            self.settings.max_delay_ms if spec.max_delay_ms is None else spec.max_delay_ms,
        )

    def run(
        self, requests: Sequence[InferenceRequest], received_ms: Sequence[int], now_ms: int,
        specs: Sequence[ModelSpec | Refusal] | None = None, routes: Sequence[Route | None] | None = None,
    ) -> list[InferenceResult]:
        """Serve ``requests`` (received at ``received_ms``); one result each, in order.

        Requests are grouped by the model version that serves them; each group is one ONNX
        Runtime call (several when it has more than ``max_batch_size`` rows). A request past
        its deadline or no longer valid gets an error result. A failure of one group fails
        that group only, and a group whose call fails is run again one request at a time, so
        a request that passes validation but makes ONNX Runtime fail (an index out of range,
        dimensions the metadata cannot express) gets its INTERNAL_ERROR alone while the
        requests batched with it are served. ``specs``: what :meth:`admit` returned for each
        request at ``now_ms`` (they are then not checked again; a refusal is that request's error result).
        """
        if len(received_ms) != len(requests) or (specs is not None and len(specs) != len(requests)):
            raise ValueError(f"{len(requests)} requests but {len(received_ms)} receive times or specs")
        started = time.perf_counter()
        results: list[InferenceResult | None] = [None] * len(requests)
        groups: dict[tuple[object, ...], tuple[ModelSpec, list[int]]] = {}
        for i, req in enumerate(requests):
            spec = self.admit(req, now_ms) if specs is None else specs[i]
            if isinstance(spec, Refusal):
                reason, message = spec
                results[i] = _error(req, reason.status(), message, received_ms[i], now_ms)
                continue
            key: tuple[object, ...] = (spec.name, spec.version)
            if not spec.fixed_row_shapes:  # rows of different shapes cannot share one call
                key += tuple(t.shape[1:] for t in ordered(req.inputs, spec.input_names))
            group = groups.get(key)
            if group is None:
                groups[key] = (spec, [i])
            else:
                group[1].append(i)
        for spec, indices in groups.values():
            members = [requests[i] for i in indices]
            received = [received_ms[i] for i in indices]
            served = self._serve(spec, members, received, now_ms, started,
                                 None if routes is None else [routes[i] for i in indices])
            for i, result in zip(indices, served, strict=True):
                results[i] = result
        if routes is not None:  # the ones refused above
            for i, route in enumerate(routes):
                found = results[i]
                if route is not None and found is not None and found.route is not route:
                    results[i] = dataclasses.replace(found, route=route)
        return results  # type: ignore[return-value]  # every slot is filled above

    def _serve(
        self, spec: ModelSpec, members: list[InferenceRequest], received: list[int], now_ms: int, started: float,
        routes: list[Route | None] | None = None,
    ) -> list[InferenceResult]:
        """One group's results; never raises (a failure becomes error results)."""
        try:
            session = self.sessions.get(spec)
        except ModelError as exc:  # the model itself cannot serve: the same answer for all
            status = exc.reason.status()
            return [_error(r, status, exc.message, t, now_ms) for r, t in zip(members, received, strict=True)]
        try:
            return self._run_group(spec, session, members, received, now_ms, started, routes)
        except Exception as exc:  # noqa: BLE001 - one group's failure must not fail the others
            if len(members) > 1:
                # Which request broke the call is unknown: run each alone (a batch's cost again,
                # paid only when a call fails), so one bad request does not fail its neighbours.
                return [
                    self._serve(spec, [r], [t], now_ms, started)[0] for r, t in zip(members, received, strict=True)
                ]
            if isinstance(exc, ModelError):
                status, message = exc.reason.status(), exc.message
            else:
                status = Status.INTERNAL_ERROR
                message = f"model {spec.name!r} version {spec.version!r} failed: {type(exc).__name__}: {exc}"
            return [_error(members[0], status, message, received[0], now_ms)]

    def _run_group(
        self,
        spec: ModelSpec,
        session: ort.InferenceSession,
        members: list[InferenceRequest],
        received: list[int],
        now_ms: int,
        started: float,
        routes: list[Route | None] | None = None,
    ) -> list[InferenceResult]:
        out_names = list(spec.output_names)
        total = sum(req.rows for req in members)
        # Inputs are validated and share their row shape: one byte join per input, no per-row work.
        feeds: dict[str, np.ndarray] = {}
        for k, want in enumerate(spec.inputs):
            tensors = [ordered(req.inputs, spec.input_names)[k] for req in members]
            data = tensors[0].data if len(tensors) == 1 else b"".join([t.data for t in tensors])
            feeds[want.name] = np.frombuffer(data, DTYPES[want.dtype]).reshape((total, *tensors[0].shape[1:]))
        limit = spec.max_batch_size or self.settings.max_batch_size

        # One call, or chunks of `limit` rows; a chunk may cut through a multi-row request.
        bounds = [(a, min(a + limit, total)) for a in range(0, total, limit)]
        pieces: list[list[np.ndarray]] = [[] for _ in out_names]
        clock: list[tuple[float, float]] = []
        for a, b in bounds:
            feed = feeds if len(bounds) == 1 else {k: v[a:b] for k, v in feeds.items()}
            t0 = time.perf_counter()
            outs = session.run(out_names, feed)
            clock.append((t0, time.perf_counter()))
            for name, piece, out in zip(out_names, pieces, outs, strict=True):
                if out.ndim == 0 or out.shape[0] != b - a:
                    raise ModelError(
                        Reason.INTERNAL_ERROR,
                        f"{spec.onnx_path}: output {name!r} has shape {list(out.shape)} for a batch of {b - a} rows",
                    )
                piece.append(out)

        # Each output becomes one byte string, sliced per request.
        wire: list[tuple[str, str, tuple[int, ...], int, bytes]] = []
        for name, piece in zip(out_names, pieces, strict=True):
            out = piece[0] if len(piece) == 1 else np.concatenate(piece)
            kind = Tensor.from_numpy(name, out[:0]).dtype
            array = np.ascontiguousarray(out, dtype=DTYPES[kind])
            row_bytes = array.dtype.itemsize * math.prod(array.shape[1:])
            wire.append((name, kind, tuple(int(d) for d in array.shape[1:]), row_bytes, array.tobytes()))
        done_ms = now_ms + (time.perf_counter() - started) * 1000.0

        results: list[InferenceResult] = []
        start = 0
        member_routes = routes if routes is not None else [None] * len(members)
        for req, received_ms, route in zip(members, received, member_routes, strict=True):
            end = start + req.rows
            first, last = start // limit, (end - 1) // limit
            chunk_start_ms = now_ms + (clock[first][0] - started) * 1000.0
            outputs = tuple([
                Tensor(name, kind, (end - start, *rest), data[start * size : end * size])
                for name, kind, rest, size, data in wire
            ])
            timings = Timings(
                queued_ms=chunk_start_ms - received_ms,
                batch_size=bounds[first][1] - bounds[first][0],
                inference_ms=(clock[last][1] - clock[first][0]) * 1000.0,
                end_to_end_ms=done_ms - req.created_at_ms,
            )
            results.append(
                InferenceResult(
                    req.request_id, req.model, Status.OK, int(done_ms), spec.version, outputs, None, timings, route
                )
            )
            start = end
        return results


def _error(req: InferenceRequest, status: Status, message: str, received_ms: int, now_ms: int) -> InferenceResult:
    timings = Timings(queued_ms=float(now_ms - received_ms), end_to_end_ms=float(now_ms - req.created_at_ms))
    return InferenceResult(req.request_id, req.model, status, now_ms, error=clip(message), timings=timings)
