"""Serving one batch: frame in, frame out, with no Flink import.

The job's Java steps route each Kafka record to a lane and micro-batch it there in
checkpointed state (``java/``); a lane's batch reaches Python as one frame
(:mod:`aimass.contract.frames`). :class:`BatchServer` decodes and validates every record, runs the
accepted ones through the engine (one ONNX Runtime call per model version group), each at the
version the job's routing chose for it (the record's route, docs/CONTROL.md), and answers
each record in arrival order:

* an accepted request: its result (kind ``RESULT``: it claims its id), and a dead letter as
  well when that result is not OK;
* a refused record: a dead letter, and an error result (``ERROR_RESULT``: claims nothing)
  when its id can be read;
* a second accepted record of an id already accepted in the same batch: nothing (its twin's
  result is the id's one), without running it;
* a request routed with a shadow version: its result as above, and the shadow's result (kind
  ``SHADOW``, to the shadow topic) with whether the two agree (:mod:`aimass.control.shadow`);
* a request the routing could not place (rule UNKNOWN): UNKNOWN_MODEL, naming what exists;
* a route update (rule CONTROL, forwarded by ``Route`` to every lane): no answer; the store
  registers its versions and starts loading the new ones;
* a record that makes the codec or the engine raise (a bug: neither should): INTERNAL_ERROR for
  it (or for the batch's accepted requests), never an exception out of the operator, which
  would restart the job and meet the same record again.

Which result an id keeps across batches is decided downstream, keyed by request id
(``java/.../Dedup.java``): the first that claims it; an error result only while none has.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from aimass.contract.codec import Codec, DecodeError
from aimass.contract.frames import (
    ALIAS,
    CONTROL,
    DEAD_LETTER,
    DEFAULT,
    ERROR_RESULT,
    NONE,
    PINNED,
    RESULT,
    SHADOW,
    SPLIT,
    UNKNOWN,
    BatchRecord,
    OutputsWriter,
    read_batch,
)
from aimass.contract.messages import InferenceRequest, InferenceResult, Reason, Route, Status, Timings, clip
from aimass.contract.rules import Refusal
from aimass.control.shadow import ShadowStats, agrees
from aimass.serving.rejects import Source, deliverable, reject

if TYPE_CHECKING:
    from aimass.control.store import ModelStore
    from aimass.graphs.run import GraphRunner
    from aimass.serving.engine import InferenceEngine
    from aimass.serving.models import ModelSpec
    from aimass.settings import JobSettings


def wall_ms() -> int:
    """Epoch milliseconds now."""
    return int(time.time() * 1000)


log = logging.getLogger("aimass")
_RULE_NAMES = {DEFAULT: "default", PINNED: "pinned", ALIAS: "alias", SPLIT: "split"}


_ROUTES: dict[tuple[int, str], Route] = {}


def _route(record: BatchRecord) -> Route:
    """The route a result carries: the rule that chose its version, and the alias or bucket
    (one shared value per rule and alias, except splits, whose bucket is the request's)."""
    if record.rule == SPLIT:
        return Route("split", None, record.bucket)
    route = _ROUTES.get((record.rule, record.alias))
    if route is None:
        route = Route(_RULE_NAMES.get(record.rule, "default"), record.alias or None, -1)
        if len(_ROUTES) < 4096:  # aliases are names a request sends: bounded
            _ROUTES[(record.rule, record.alias)] = route
    return route


def _bug(doing: str, exc: Exception) -> str:
    return clip(f"the job failed {doing} this request (a bug, please report it): {type(exc).__name__}: {exc}")


@dataclass
class ServeStats:
    """Running totals of what a server answered, read by the job's metrics (udfs/infer_batch.py)."""

    results: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """Results written, by (model, version, status); error results of refused records too."""
    dead_letters: Counter[str] = field(default_factory=Counter)
    """Dead letters written, by reason."""
    inference_ms: list[float] = field(default_factory=list)
    """Time of each engine (or graph) call since the reader last took them (:meth:`take_times`)."""

    def take_times(self) -> list[float]:
        """The call times recorded since the last call, and forget them."""
        times, self.inference_ms = self.inference_ms, []
        return times


class BatchServer:
    """Answers batch frames (see the module docstring)."""

    def __init__(self, codec: Codec, engine: InferenceEngine, job: JobSettings,
                 clock: Callable[[], int] = wall_ms, store: ModelStore | None = None) -> None:
        self.codec, self.engine, self.clock, self.store = codec, engine, clock, store
        self.max_bytes, self.output_limit = job.max_payload_bytes, job.output_record_limit
        self.shadow_stats = ShadowStats()
        self.stats = ServeStats()
        self._graphs: dict[tuple[str, str], GraphRunner] = {}

    def serve(self, frame: bytes) -> bytes:
        """The outputs frame answering every record of the batch frame ``frame``."""
        records = read_batch(frame)
        now = self.clock()
        answers: list[OutputsWriter] = [OutputsWriter() for _ in records]
        accepted: list[tuple[int, InferenceRequest, ModelSpec, Route]] = []
        shadows: list[tuple[int, InferenceRequest, ModelSpec]] = []
        graphs: list[tuple[int, InferenceRequest, ModelSpec, Route]] = []
        ids: set[str] = set()
        # Route updates first: after a restore, records pending in MicroBatch may share a batch
        # with (and precede) the updates Route sends again.
        for record in records:
            if record.rule == CONTROL:
                self._control(record.value)
        for i, record in enumerate(records):
            if record.rule == CONTROL:
                continue
            try:
                request = self.codec.decode_request(record.value, self.max_bytes)
            except DecodeError as exc:
                self._refuse(answers[i], record, exc.reason, exc.message, now, exc.request_id,
                             self._readable_model(record.value, exc.request_id))
                continue
            except Exception as exc:  # noqa: BLE001 - a codec bug fails this record, never the job
                rid = self.codec.peek_request_id(record.value)
                self._refuse(answers[i], record, Reason.INTERNAL_ERROR, _bug("decoding", exc), now, rid,
                             self._readable_model(record.value, rid))
                continue
            if record.rule in (UNKNOWN, NONE):
                detail = record.detail if record.rule == UNKNOWN else (
                    "the job's router could not read this request's id or model, its decoder could (a bug, "
                    "please report it)")
                self._refuse(answers[i], record, Reason.UNKNOWN_MODEL if record.rule == UNKNOWN else
                             Reason.INTERNAL_ERROR, detail, now, request.request_id, request.model,
                             request.created_at_ms)
                continue
            spec = self.engine.admit(request, now, record.version or None)  # empty: tests, tools
            if isinstance(spec, Refusal):
                self._refuse(answers[i], record, spec.reason, spec.message, now, request.request_id,
                             request.model, request.created_at_ms)
            elif request.request_id not in ids:
                ids.add(request.request_id)
                if spec.graph is not None:  # a graph (docs/GRAPHS.md): no shadows of graphs yet
                    graphs.append((i, request, spec, _route(record)))
                    continue
                accepted.append((i, request, spec, _route(record)))
                if record.shadow:
                    shadow = self.engine.admit(request, now, record.shadow)
                    if not isinstance(shadow, Refusal):  # a shadow that cannot take it: nothing to compare
                        shadows.append((i, request, shadow))
        if accepted:
            self._run(records, answers, accepted, shadows, now)
        if graphs:
            self._run_graphs(records, answers, graphs, now)
        out = OutputsWriter()
        for answer in answers:
            out.extend(answer)
        return out.frame()

    def _run(self, records: list[BatchRecord], answers: list[OutputsWriter],
             accepted: list[tuple[int, InferenceRequest, ModelSpec, Route]],
             shadows: list[tuple[int, InferenceRequest, ModelSpec]], now: int) -> None:
        """One engine call for the batch's accepted requests and their shadows; answers each."""
        requests = [request for _, request, _, _ in accepted] + [request for _, request, _ in shadows]
        received = [records[i].received_ms for i, *_ in accepted] + [records[i].received_ms for i, *_ in shadows]
        specs = [spec for _, _, spec, _ in accepted] + [spec for _, _, spec in shadows]
        routes: list[Route | None] = [route for *_, route in accepted] + [None] * len(shadows)
        started = time.perf_counter()
        try:
            results = self.engine.run(requests, received, now, specs, routes)
        except Exception as exc:  # noqa: BLE001 - documented never to raise; if it does, the batch's
            # requests get INTERNAL_ERROR results (their ids are claimed: they were accepted)
            message = _bug("serving", exc)
            results = [InferenceResult(r.request_id, r.model, Status.INTERNAL_ERROR, self.clock(),
                                       error=f"{Reason.INTERNAL_ERROR.value}: {message}") for r in requests]
        self.stats.inference_ms.append((time.perf_counter() - started) * 1000.0)
        primary: dict[int, InferenceResult] = {}
        for (i, request, _, _), result in zip(accepted, results, strict=False):
            primary[i] = result
            result, encoded = deliverable(self.codec, result, self.output_limit)  # too large: an error
            answers[i].add(RESULT, request.request_id, encoded)
            self.stats.results[(request.model, result.version or "", result.status.value)] += 1
            if result.status is not Status.OK:
                reason = Reason(result.status.value)  # every non-OK status has its reason code
                self._refuse(answers[i], records[i], reason, result.error or "", now, request.request_id,
                             error_result=False)
        for (i, request, _), result in zip(shadows, results[len(accepted):], strict=True):
            agreed = agrees(primary[i], result)
            self.shadow_stats.record(request.model, agreed)
            result = replace(result, route=Route("shadow", primary_version=primary[i].version, agrees=agreed))
            _, encoded = deliverable(self.codec, result, self.output_limit)
            answers[i].add(SHADOW, request.request_id, encoded)

    def _run_graphs(self, records: list[BatchRecord], answers: list[OutputsWriter],
                    accepted: list[tuple[int, InferenceRequest, ModelSpec, Route]], now: int) -> None:
        """The batch's requests to graphs, one :class:`~aimass.graphs.run.GraphRunner` call per graph version."""
        from aimass.graphs.run import Failure, GraphRunner

        groups: dict[tuple[str, str], list[tuple[int, InferenceRequest, ModelSpec, Route]]] = {}
        for entry in accepted:
            groups.setdefault((entry[2].name, entry[2].version), []).append(entry)
        for (name, version), members in groups.items():
            spec = members[0][2]
            started = time.perf_counter()
            try:
                runner = self._graphs.get((name, version))
                if runner is None:
                    assert spec.graph is not None  # grouped above
                    runner = self._graphs[(name, version)] = GraphRunner(self.engine, spec.graph, spec.output_names)
                graph_answers = runner.run([request for _, request, _, _ in members], now)
            except Exception as exc:  # noqa: BLE001 - a bug fails these requests, never the job
                message = _bug("serving the graph of", exc)
                graph_answers = [None] * len(members)  # type: ignore[list-item]
            took_ms = (time.perf_counter() - started) * 1000.0
            self.stats.inference_ms.append(took_ms)
            rows = sum(request.rows for _, request, _, _ in members)
            for (i, request, _, route), answer in zip(members, graph_answers, strict=True):
                done = self.clock()
                timings = Timings(float(now - records[i].received_ms), rows, took_ms,
                                  float(done - request.created_at_ms))
                if answer is None:
                    result = InferenceResult(request.request_id, request.model, Status.INTERNAL_ERROR, done,
                                             error=f"{Reason.INTERNAL_ERROR.value}: {message}", timings=timings)
                elif isinstance(answer.outcome, Failure):
                    result = InferenceResult(request.request_id, request.model, answer.outcome.status, done, version,
                                             error=clip(answer.outcome.message), timings=timings, route=route,
                                             graph=answer.graph)
                else:
                    result = InferenceResult(request.request_id, request.model, Status.OK, done, version,
                                             answer.outcome, timings=timings, route=route, graph=answer.graph)
                result, encoded = deliverable(self.codec, result, self.output_limit)
                answers[i].add(RESULT, request.request_id, encoded)
                self.stats.results[(request.model, result.version or "", result.status.value)] += 1
                if result.status is not Status.OK:
                    self._refuse(answers[i], records[i], Reason(result.status.value), result.error or "", now,
                                 request.request_id, error_result=False)

    def _control(self, value: bytes) -> None:
        """A route update forwarded by ``Route``: register its versions (loads start now)."""
        if self.store is None:
            return
        try:
            update = json.loads(value)
        except ValueError:
            log.error("route update that is not JSON, ignored (a bug): %r", value[:200])
            return
        self.store.apply(update)

    def _readable_model(self, value: bytes, request_id: str | None) -> str:
        """The model a refused request names, when its first fields can be read (its error
        result then says which model it was for, as ``schemas/README.md`` promises); else ""."""
        if request_id is None:
            return ""
        peeked = self.codec.peek_route(value)
        return peeked[1] if peeked is not None and peeked[0] == request_id else ""

    def _refuse(
        self, answer: OutputsWriter, record: BatchRecord, reason: Reason, message: str, now: int,
        request_id: str | None, model: str = "", created_at_ms: int | None = None, error_result: bool = True,
    ) -> None:
        rejection = reject(
            self.codec, record.value, Source(record.topic, record.partition, record.offset), reason, message,
            now, request_id, model=model, created_at_ms=created_at_ms, error_result=error_result,
            limit=self.output_limit,
        )
        if rejection.result is not None:
            answer.add(ERROR_RESULT, rejection.result_key, rejection.result)
            self.stats.results[(model, "", reason.status().value)] += 1
        answer.add(DEAD_LETTER, request_id, rejection.dead_letter)
        self.stats.dead_letters[reason.value] += 1
