"""Running a checked graph over a batch of requests, with the engine (no Flink).

:class:`GraphRunner` takes the definition :func:`aimass.graphs.spec.check` pinned and a batch of
requests to the graph; each step is one engine call for every request still in it (so graph
steps batch as models do), ensemble members that may answer early (``k`` < n, a ``timeout_ms`` or a
deadline) run on threads (ONNX Runtime releases the GIL), the others one after the other, and
an ensemble stops waiting when ``k`` members have answered or at ``timeout_ms`` (counted from the
graph's start on the batch) or the batch's earliest deadline. A member left running past its
ensemble's timeout is not started again while it runs: the next batches count it missing at
once (so a member slower than the traffic costs one run at a time, never a queue). Each request
gets its outputs or its failing step's typed error, and a :class:`~aimass.contract.messages.GraphOutcome`
(partial, missing members, per-step timings). The job's batch server runs it (docs/GRAPHS.md).
"""

from __future__ import annotations

import concurrent.futures as futures
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aimass.contract.messages import GraphOutcome, InferenceRequest, Status, StepTiming, Tensor
from aimass.graphs.spec import _label
from aimass.serving.engine import InferenceEngine


@dataclass(frozen=True)
class Failure:
    """A request's graph stopped at a step: the step's status and message."""

    status: Status
    message: str


@dataclass
class _Item:
    request: InferenceRequest
    steps: list[StepTiming] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


Env = dict[str, Tensor]
Outcome = Env | Failure


@dataclass(frozen=True)
class Answer:
    """One request's answer: its outputs (tensors in the graph's output order) or a failure."""

    outcome: tuple[Tensor, ...] | Failure
    graph: GraphOutcome


class GraphRunner:
    """Runs one checked graph definition (see the module docstring)."""

    def __init__(self, engine: InferenceEngine, definition: Mapping[str, Any], output_names: Sequence[str],
                 pool: futures.Executor | None = None) -> None:
        self.engine, self.definition, self.output_names = engine, definition, tuple(output_names)
        self.pool = pool or futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="aimass-graph")
        self._busy: dict[str, futures.Future[list[Outcome]]] = {}  # each pooled member's latest run

    def run(self, requests: Sequence[InferenceRequest], now_ms: int) -> list[Answer]:
        """One answer per request, in order."""
        items = [_Item(r) for r in requests]
        envs: list[Env] = [{t.name: t for t in r.inputs} for r in requests]
        one = _Pass(self.engine, self.definition, self.pool, self._busy, time.perf_counter(), now_ms)
        root = self.definition["root"]
        outcomes = one.node(root, "" if isinstance(root, str) else "root", items, envs)
        answers = []
        for item, outcome in zip(items, outcomes, strict=True):
            graph = GraphOutcome(bool(item.missing), tuple(item.missing), tuple(item.steps))
            if isinstance(outcome, Failure):
                answers.append(Answer(outcome, graph))
            else:
                answers.append(Answer(tuple(outcome[n] for n in self.output_names), graph))
        return answers


@dataclass(frozen=True)
class _Pass:
    """One run of the graph over one batch: its clock travels with it (a member left running
    past its ensemble's timeout finishes on its own pass, whatever the next batch does)."""

    engine: InferenceEngine
    definition: Mapping[str, Any]
    pool: futures.Executor
    busy: dict[str, futures.Future[list[Outcome]]]
    started: float
    now_ms: int

    def node(self, node: Any, path: str, items: list[_Item], envs: list[Env]) -> list[Outcome]:
        if isinstance(node, str):
            return self.node(self.definition["nodes"][node], node, items, envs)  # named as in the check
        if not items:
            return []
        if "model" in node:
            return self._step(node, path or _label(node, 0), items, envs)
        if "sequence" in node:
            return self._sequence(node, path, items, envs)
        if "ensemble" in node:
            return self._ensemble(node, path, items, envs)
        return self._switch(node, path, items, envs)

    def _step(self, node: Mapping[str, Any], path: str, items: list[_Item], envs: list[Env]) -> list[Outcome]:
        model, version = node["model"], node["version"]
        mapping: Mapping[str, str] = node.get("inputs", {})
        renames = node.get("outputs", {})
        keep = set(renames) if isinstance(renames, list) else None
        renames = {} if isinstance(renames, list) else renames
        spec = self.engine.repository.resolve(model, version)
        requests, specs = [], []
        for item, env in zip(items, envs, strict=True):
            inputs = tuple(_renamed(env[mapping.get(n, n)], n) for n in spec.input_names)
            r = item.request
            request = InferenceRequest(r.request_id, model, inputs, r.created_at_ms, version, r.deadline_ms,
                                       r.priority)
            requests.append(request)
            specs.append(self.engine.admit(request, _wall_ms(), version))  # inputs fit, deadline not passed
        results = self.engine.run(requests, [self.now_ms] * len(requests), self.now_ms, specs)
        finished = (time.perf_counter() - self.started) * 1000.0
        out: list[Outcome] = []
        for item, result in zip(items, results, strict=True):
            item.steps.append(StepTiming(path, model, version, result.status.value, result.timings.batch_size,
                                         result.timings.inference_ms, finished))
            if result.status is not Status.OK:
                out.append(Failure(result.status, f"step {path!r} (model {model!r} version {version!r}): "
                                                  f"{result.error}"))
                continue
            out.append({renames.get(t.name, t.name): _renamed(t, renames.get(t.name, t.name))
                        for t in result.outputs if keep is None or t.name in keep})
        return out

    def _sequence(self, node: Mapping[str, Any], path: str, items: list[_Item], envs: list[Env]) -> list[Outcome]:
        outcomes: list[Outcome] = [{} for _ in items]
        live = list(range(len(items)))
        seen = [dict(env) for env in envs]
        for i, step in enumerate(node["sequence"]):
            got = self.node(step, _join(path, _label(step, i)), [items[j] for j in live], [seen[j] for j in live])
            still = []
            for j, outcome in zip(live, got, strict=True):
                outcomes[j] = outcome
                if not isinstance(outcome, Failure):
                    seen[j].update(outcome)
                    still.append(j)
            live = still
        return outcomes

    def _ensemble(self, node: Mapping[str, Any], path: str, items: list[_Item], envs: list[Env]) -> list[Outcome]:
        members = node["ensemble"]
        labels = [_join(path, _label(m, i)) for i, m in enumerate(members)]
        k = int(node.get("k", len(members)))
        # each member records its step timings on its own copies; merged into the items below
        copies = [[_Item(item.request) for item in items] for _ in members]
        wait_s = _wait_s(node.get("timeout_ms"), items, self.now_ms, self.started)
        done: dict[int, list[Outcome]] = {}
        if wait_s is None and k == len(members):
            # Nothing to answer early for: the members one after the other on this thread (a
            # handoff to the pool costs more than a small model's call; ONNX Runtime's own
            # intra-op threads still parallelise each call).
            for i, (m, label, copy) in enumerate(zip(members, labels, copies, strict=True)):
                done[i] = self.node(m, label, copy, envs)
        running: dict[futures.Future[list[Outcome]], int] = {}
        busy: list[str] = []
        for i, (m, label, copy) in enumerate(zip(members, labels, copies, strict=True) if not done else ()):
            late = self.busy.get(label)
            if late is not None and not late.done():
                busy.append(label)  # still on an earlier batch, past its timeout: missing here, not queued behind it
                continue
            future = self.pool.submit(self.node, m, label, copy, envs)
            self.busy[label] = future
            running[future] = i
        pending = set(running)
        while pending and len(done) < k:
            remaining = None if wait_s is None else wait_s - (time.perf_counter() - self.started)
            if remaining is not None and remaining <= 0:
                break
            finished, pending = futures.wait(pending, timeout=remaining, return_when=futures.FIRST_COMPLETED)
            for future in finished:
                done[running[future]] = future.result()
        out: list[Outcome | None] = []
        groups: dict[tuple[str, ...], list[int]] = {}  # requests answered by the same members
        answers: dict[int, list[tuple[str, Env]]] = {}
        for j, item in enumerate(items):
            answered = []
            for i in range(len(members)):
                if i in done:
                    item.steps.extend(copies[i][j].steps)
                    outcome = done[i][j]
                    if not isinstance(outcome, Failure):
                        answered.append((labels[i], outcome))
                        continue
                item.missing.append(labels[i])
            if not answered:
                failures = [done[i][j] for i in sorted(done) if isinstance(done[i][j], Failure)]
                why = f" ({', '.join(busy)} still busy with an earlier batch)" if busy else ""
                out.append(failures[0] if failures else Failure(
                    Status.DEADLINE_EXCEEDED, f"ensemble {path or 'root'!r}: no member answered in time{why}"))
                continue
            out.append(None)
            answers[j] = answered
            groups.setdefault(tuple(label for label, _ in answered), []).append(j)
        merge = node.get("merge", "mean")
        for group in groups.values():
            if isinstance(merge, dict):  # a merge step: one engine call for the group
                offered = []
                for j in group:
                    env = dict(envs[j])
                    for label, outputs in answers[j]:
                        short = label.rsplit("/", 1)[-1]
                        env.update({f"{short}.{n}": t for n, t in outputs.items()})
                    offered.append(env)
                merged = self.node(merge, _join(path, "merge"), [items[j] for j in group], offered)
            else:
                merged = list(_merge(merge, node.get("vote_on"), labels, [answers[j] for j in group]))
            for j, outcome in zip(group, merged, strict=True):
                out[j] = outcome
        return out  # type: ignore[return-value]  # every None replaced above

    def _switch(self, node: Mapping[str, Any], path: str, items: list[_Item], envs: list[Env]) -> list[Outcome]:
        rule = node["switch"]
        first = self.node(rule["first"], _join(path, "first"), items, envs)
        outcomes: list[Outcome] = list(first)
        branches: dict[str, list[int]] = {"then": [], "else": []}
        for j, outcome in enumerate(first):
            if isinstance(outcome, Failure):
                continue
            values = outcome[rule["output"]].to_numpy()
            if "max_at_least" in rule:
                passed = bool(np.all(values.max(axis=-1) >= float(rule["max_at_least"])))
            else:
                passed = bool(np.all(np.isin(values.argmax(axis=-1), list(rule["argmax_in"]))))
            branches["then" if passed else "else"].append(j)
        for key, chosen in branches.items():
            branch = rule.get(key)
            if branch is None or not chosen:
                continue
            seen = []
            for j in chosen:
                env = dict(envs[j])
                env.update(first[j])  # type: ignore[arg-type]  # not a Failure: chosen above
                seen.append(env)
            for j, outcome in zip(chosen, self.node(branch, _join(path, key), [items[j] for j in chosen], seen),
                                  strict=True):
                outcomes[j] = outcome
        return outcomes


def _merge(merge: str, vote_on: str | None, labels: Sequence[str],
           answers: Sequence[Sequence[tuple[str, Env]]]) -> list[Env]:
    """Mean, vote or concat for requests answered by the same members, over all their rows at
    once (one numpy call per output, not per request); each request's share split back out."""
    first = answers[0][0][1]
    rows = [next(iter(a[0][1].values())).shape[:1] or (1,) for a in answers]
    names = [vote_on or next(iter(first))] if merge == "vote" else list(first)
    stacked: dict[str, list[np.ndarray]] = {}
    for name in names:
        per_member = [[a[m][1][name].to_numpy() for a in answers] for m in range(len(answers[0]))]
        if len(answers) > 1 and len({p.shape[1:] for parts in per_member for p in parts}) > 1:
            return [env for a in answers for env in _merge(merge, vote_on, labels, [a])]  # ragged: one by one
        stacked[name] = [parts[0] if len(parts) == 1 else np.concatenate(parts) for parts in per_member]
    bounds = np.cumsum([r[0] for r in rows])[:-1]

    def split(whole: np.ndarray) -> list[np.ndarray]:
        return [whole] if len(answers) == 1 else np.split(whole, bounds)

    if merge == "vote":
        picks = np.stack([values.argmax(axis=-1) for values in stacked[names[0]]])  # members x rows
        counts = np.zeros((picks.shape[1], stacked[names[0]][0].shape[-1]), np.int64)
        for member_picks in picks:
            counts[np.arange(picks.shape[1]), member_picks] += 1
        chosen, votes = counts.argmax(axis=1), counts.max(axis=1)  # a tie: the lowest class
        return [{"label": Tensor.from_numpy("label", c), "votes": Tensor.from_numpy("votes", v)}
                for c, v in zip(split(chosen), split(votes), strict=True)]
    merged: dict[str, list[np.ndarray]] = {}
    answered = [label for label, _ in answers[0]]
    for name, arrays in stacked.items():
        if merge == "mean":
            whole = np.mean(np.stack(arrays), axis=0).astype(arrays[0].dtype)
        else:  # concat, member order, NaN for the missing
            by_label = dict(zip(answered, arrays, strict=True))
            blank = np.full_like(arrays[0], np.nan)
            whole = np.concatenate([by_label.get(label, blank) for label in labels], axis=-1)
        merged[name] = split(whole)
    return [{name: Tensor.from_numpy(name, parts[j]) for name, parts in merged.items()} for j in range(len(answers))]


def _wall_ms() -> int:
    return int(time.time() * 1000)


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


def _renamed(tensor: Tensor, name: str) -> Tensor:
    return tensor if tensor.name == name else Tensor(name, tensor.dtype, tensor.shape, tensor.data)


def _wait_s(timeout_ms: int | None, items: Sequence[_Item], now_ms: int, started: float) -> float | None:
    """Seconds after ``started`` an ensemble stops waiting: its timeout, or the batch's earliest deadline."""
    limits = [] if timeout_ms is None else [timeout_ms / 1000.0]
    deadlines = [item.request.deadline_ms for item in items if item.request.deadline_ms is not None]
    if deadlines:
        limits.append(max(0.0, (min(deadlines) - now_ms) / 1000.0))  # type: ignore[type-var]
    return min(limits) if limits else None
