"""Graph definitions, pure: parse a graph file and check it against the models it names.

A graph file is JSON (docs/GRAPHS.md)::

    {"name": "digits-vote", "version": "1",
     "root": "vote",
     "nodes": {"vote": {"ensemble": [{"model": "digits", "version": "1"}, ...],
                        "merge": "vote", "k": 2, "timeout_ms": 50}}}

Wherever a node is expected, a string names one of ``nodes`` (so a node can be reused, and a
reference can loop back: that is the cycle :func:`check` refuses). Node kinds:

* a **step**: ``{"model": M, "version": V, "inputs": {its_input: available_name},
  "outputs": {its_output: new_name} or [outputs kept]}`` (``version`` optional: pinned to the
  model's default when the graph is checked; the maps default to the same names, every output);
* a **sequence**: ``{"sequence": [node, ...]}``; each node sees the request's inputs and every
  earlier node's outputs; the last one's outputs are the sequence's;
* an **ensemble**: ``{"ensemble": [node, ...], "merge": "mean" | "vote" | "concat" | step,
  "k": K, "timeout_ms": T, "vote_on": output}``: the same inputs to every member;
* a **switch**: ``{"switch": {"first": node, "output": name, "max_at_least": x | "argmax_in":
  [labels], "then": node | null, "else": node | null}}``: ``first`` runs; a request whose
  ``output`` passes the test in every row goes on to ``then``, the others to ``else`` (null:
  answer with ``first``'s outputs).

:func:`check` returns a :class:`Checked` (the graph's own inputs and outputs, and the definition
with every step's version pinned) or raises :class:`GraphError` with a message naming the step.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aimass.contract.limits import NAME_PATTERN
from aimass.serving.models import ModelError, TensorSpec

MERGES = ("mean", "vote", "concat")
FLOATS = ("float16", "float32", "float64")
#: Node kinds, by the key that marks them.
KINDS = ("model", "sequence", "ensemble", "switch")


class GraphError(ValueError):
    """A graph that cannot be deployed; the message names the step."""


@dataclass(frozen=True)
class Member:
    """What a step's model offers: its input and output specs, at a pinned version."""

    version: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


#: ``lookup(model, version or None)`` -> the member at that version (None: the default one).
Lookup = Callable[[str, "str | None"], Member]


@dataclass(frozen=True)
class Checked:
    """A graph that passed :func:`check`."""

    name: str
    version: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    definition: dict[str, Any]
    """The file's definition with every step's ``version`` pinned."""

    def metadata(self) -> dict[str, Any]:
        """The ``model.json`` of the graph's version: its inputs, outputs and the definition."""
        return {"name": self.name, "version": self.version, "inputs": [_spec_json(t) for t in self.inputs],
                "outputs": [_spec_json(t) for t in self.outputs], "graph": self.definition}


def _spec_json(t: TensorSpec) -> dict[str, Any]:
    return {"name": t.name, "dtype": t.dtype, "shape": [-1 if d is None else d for d in t.shape]}


def load(text: str) -> dict[str, Any]:
    """A graph file's JSON object, or GraphError naming what is wrong with it."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise GraphError(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise GraphError("a graph file is a JSON object with name, version, root and nodes")
    return raw


def check(raw: Mapping[str, Any], lookup: Lookup) -> Checked:
    """Check a graph definition (see the module docstring) against the models ``lookup`` knows."""
    for key in ("name", "version"):
        value = raw.get(key)
        if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
            raise GraphError(f"{key} {value!r} is not valid: use 1-64 of A-Z a-z 0-9 _ . - , not starting with a dot")
    nodes = raw.get("nodes", {})
    if not isinstance(nodes, dict):
        raise GraphError("'nodes' must map names to nodes")
    if "root" not in raw:
        raise GraphError("'root' is missing: name the node (or give the node) the graph starts at")
    walker = _Walker(nodes, lookup)
    pinned_nodes: dict[str, Any] = {}
    walker.pinned = pinned_nodes
    request: dict[str, TensorSpec] = {}
    walker.request = request
    outputs, root = walker.node(raw["root"], "root", {}, ())
    definition = {"root": root, "nodes": pinned_nodes}
    return Checked(raw["name"], raw["version"], tuple(request.values()), tuple(outputs.values()), definition)


class _Walker:
    """Walks the nodes in the order they run, typing every tensor on the way."""

    def __init__(self, nodes: Mapping[str, Any], lookup: Lookup) -> None:
        self.nodes, self.lookup = nodes, lookup
        self.pinned: dict[str, Any] = {}
        self.request: dict[str, TensorSpec] = {}

    def node(self, node: Any, path: str, env: dict[str, TensorSpec],
             stack: tuple[str, ...]) -> tuple[dict[str, TensorSpec], Any]:
        """The outputs of ``node`` given the tensors ``env`` holds, and the node with versions pinned."""
        if isinstance(node, str):
            if node in stack:
                raise GraphError(f"step {path!r}: cycle {' -> '.join((*stack, node))}")
            if node not in self.nodes:
                raise GraphError(f"step {path!r} names node {node!r}, which 'nodes' lacks "
                                 f"(nodes: {', '.join(sorted(self.nodes)) or 'none'})")
            outputs, pinned = self.node(self.nodes[node], node, env, (*stack, node))
            self.pinned[node] = pinned
            return outputs, node
        if not isinstance(node, dict):
            raise GraphError(f"step {path!r}: a node is an object or the name of one, got {node!r}")
        kinds = [k for k in KINDS if k in node]
        if len(kinds) != 1:
            raise GraphError(f"step {path!r}: a node has exactly one of {', '.join(KINDS)}; it has {kinds or 'none'}")
        return getattr(self, f"_{kinds[0]}")(node, path, env, stack)  # type: ignore[no-any-return]

    def _model(self, node: dict[str, Any], path: str, env: dict[str, TensorSpec],
               stack: tuple[str, ...]) -> tuple[dict[str, TensorSpec], Any]:
        model, version = node["model"], node.get("version")
        if not isinstance(model, str) or (version is not None and not isinstance(version, str)):
            raise GraphError(f"step {path!r}: 'model' and 'version' must be strings")
        try:
            member = self.lookup(model, version)
        except ModelError as exc:
            raise GraphError(f"step {path!r}: {exc.message}") from None
        inputs, renames = node.get("inputs", {}), node.get("outputs", {})
        kept = [t for t in member.outputs if not isinstance(renames, list) or t.name in renames]
        if isinstance(renames, list):  # a list keeps those outputs only
            renames = {name: name for name in renames}
        if not isinstance(inputs, dict) or not isinstance(renames, dict):
            raise GraphError(f"step {path!r}: 'inputs' and 'outputs' map names to names")
        for name in set(inputs) - {t.name for t in member.inputs}:
            raise GraphError(f"step {path!r}: model {model!r} has no input {name!r}")
        for name in set(renames) - {t.name for t in member.outputs}:
            raise GraphError(f"step {path!r}: model {model!r} has no output {name!r}")
        for want in member.inputs:
            source = inputs.get(want.name, want.name)
            have = env.get(source)
            if have is None:
                known = self.request.get(source)
                if known is None:  # a tensor no earlier step gives: the request's own input
                    self.request[source] = TensorSpec(source, want.dtype, want.shape)
                    continue
                have = known
            problem = fit(have, want)
            if problem:
                raise GraphError(f"step {path!r}: input {want.name!r} of model {model!r} from {source!r}: {problem}")
        outputs = {renames.get(t.name, t.name): TensorSpec(renames.get(t.name, t.name), t.dtype, t.shape)
                   for t in kept}
        return outputs, {**node, "version": member.version}

    def _sequence(self, node: dict[str, Any], path: str, env: dict[str, TensorSpec],
                  stack: tuple[str, ...]) -> tuple[dict[str, TensorSpec], Any]:
        steps = node["sequence"]
        if not isinstance(steps, list) or not steps:
            raise GraphError(f"step {path!r}: 'sequence' is a non-empty list of nodes")
        seen, pinned = dict(env), []
        outputs: dict[str, TensorSpec] = {}
        for i, step in enumerate(steps):
            outputs, p = self.node(step, f"{path}/{_label(step, i)}", seen, stack)
            seen.update(outputs)
            pinned.append(p)
        return outputs, {**node, "sequence": pinned}

    def _ensemble(self, node: dict[str, Any], path: str, env: dict[str, TensorSpec],
                  stack: tuple[str, ...]) -> tuple[dict[str, TensorSpec], Any]:
        members = node["ensemble"]
        if not isinstance(members, list) or len(members) < 2:
            raise GraphError(f"step {path!r}: 'ensemble' is a list of two or more nodes")
        k = node.get("k", len(members))
        if not isinstance(k, int) or not 1 <= k <= len(members):
            raise GraphError(f"step {path!r}: k {k!r} must be 1..{len(members)}")
        timeout = node.get("timeout_ms")
        if timeout is not None and (not isinstance(timeout, int) or timeout < 1):
            raise GraphError(f"step {path!r}: timeout_ms {timeout!r} must be a positive integer")
        labels = [_label(m, i) for i, m in enumerate(members)]
        if len(set(labels)) != len(labels):
            raise GraphError(f"step {path!r}: members need distinct names (give each a 'name'): {labels}")
        typed, pinned = [], []
        for label, member in zip(labels, members, strict=True):
            outputs, p = self.node(member, f"{path}/{label}", env, stack)
            typed.append(outputs)
            pinned.append(p)
        merge = node.get("merge", "mean")
        partial = k < len(members) or timeout is not None
        out = self._merge(merge, path, labels, typed, env, stack, partial, node.get("vote_on"))
        pinned_merge = merge if isinstance(merge, str) else out[1]
        return out[0], {**node, "ensemble": pinned, "merge": pinned_merge}

    def _merge(self, merge: Any, path: str, labels: list[str], typed: list[dict[str, TensorSpec]],
               env: dict[str, TensorSpec], stack: tuple[str, ...], partial: bool,
               vote_on: Any) -> tuple[dict[str, TensorSpec], Any]:
        first = typed[0]
        if isinstance(merge, dict):
            if partial:
                raise GraphError(f"step {path!r}: a merge model needs every member: k must be n and no timeout_ms")
            offered = dict(env)
            for label, outputs in zip(labels, typed, strict=True):
                offered.update({f"{label}.{name}": spec for name, spec in outputs.items()})
            return self.node(merge, f"{path}/merge", offered, stack)
        if merge not in MERGES:
            raise GraphError(f"step {path!r}: merge {merge!r} is not one of {', '.join(MERGES)} or a step")
        for label, outputs in zip(labels[1:], typed[1:], strict=True):
            if set(outputs) != set(first):
                raise GraphError(f"step {path!r}: member {label!r} has outputs {sorted(outputs)}, member "
                                 f"{labels[0]!r} {sorted(first)}: a {merge} merge needs the same outputs")
            for name, spec in outputs.items():
                if (spec.dtype, spec.shape) != (first[name].dtype, first[name].shape):
                    raise GraphError(
                        f"step {path!r}: member {label!r} output {name!r} is {spec.dtype} {_shape(spec)}, member "
                        f"{labels[0]!r} gives {first[name].dtype} {_shape(first[name])}: shapes differ")
        if merge == "vote":
            on = vote_on if vote_on is not None else next(iter(first))
            if on not in first:
                raise GraphError(f"step {path!r}: vote_on {on!r} is not an output of the members ({sorted(first)})")
            if first[on].rank != 2:
                raise GraphError(f"step {path!r}: vote_on {on!r} must be [rows, classes], is {_shape(first[on])}")
            voted = {"label": TensorSpec("label", "int64", (None,)), "votes": TensorSpec("votes", "int64", (None,))}
            return voted, merge
        for name, spec in first.items():
            if spec.dtype not in FLOATS and (merge == "mean" or partial):
                does = "averages" if merge == "mean" else "fills missing members with NaN in"
                raise GraphError(f"step {path!r}: output {name!r} is {spec.dtype}: a {merge} merge {does} floats only")
        if merge == "mean":
            return dict(first), merge
        out = {}
        for name, spec in first.items():
            if spec.rank < 2:
                raise GraphError(f"step {path!r}: output {name!r} has no axis after the rows to concatenate along")
            last = spec.shape[-1]
            width = None if last is None else last * len(typed)
            out[name] = TensorSpec(name, spec.dtype, (*spec.shape[:-1], width))
        return out, merge

    def _switch(self, node: dict[str, Any], path: str, env: dict[str, TensorSpec],
                stack: tuple[str, ...]) -> tuple[dict[str, TensorSpec], Any]:
        rule = node["switch"]
        if not isinstance(rule, dict) or "first" not in rule or "output" not in rule:
            raise GraphError(f"step {path!r}: 'switch' has 'first', 'output', a test, 'then' and 'else'")
        tests = [t for t in ("max_at_least", "argmax_in") if t in rule]
        if len(tests) != 1:
            raise GraphError(f"step {path!r}: a switch has one test, max_at_least or argmax_in; "
                             f"it has {tests or 'none'}")
        first, pinned_first = self.node(rule["first"], f"{path}/first", env, stack)
        on = first.get(rule["output"])
        if on is None:
            raise GraphError(f"step {path!r}: output {rule['output']!r} is not one of the first step's {sorted(first)}")
        if on.rank != 2 or (tests[0] == "max_at_least" and on.dtype not in FLOATS):
            raise GraphError(f"step {path!r}: the switch tests a [rows, classes] float output, "
                             f"{rule['output']!r} is {on.dtype} {_shape(on)}")
        seen = {**env, **first}
        branches: dict[str, tuple[dict[str, TensorSpec], Any]] = {}
        for key in ("then", "else"):
            branch = rule.get(key)
            branches[key] = (dict(first), None) if branch is None else self.node(branch, f"{path}/{key}", seen, stack)
        a, b = branches["then"][0], branches["else"][0]
        if {n: (s.dtype, s.rank) for n, s in a.items()} != {n: (s.dtype, s.rank) for n, s in b.items()}:
            raise GraphError(f"step {path!r}: 'then' gives {_listing(a)} but 'else' gives {_listing(b)}: "
                             "both branches must answer with the same outputs")
        pinned = {**rule, "first": pinned_first, "then": branches["then"][1], "else": branches["else"][1]}
        return a, {**node, "switch": pinned}


GRAPH_URI = "graph:"
"""The ``uri`` of a graph's deploy: its bytes are its definition (``metadata_json``)."""


def members(definition: Mapping[str, Any]) -> set[tuple[str, str]]:
    """Every ``(model, version)`` a checked (pinned) definition runs."""
    found: set[tuple[str, str]] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("model"), str) and isinstance(node.get("version"), str):
                found.add((node["model"], node["version"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(definition.get("root"))
    walk(definition.get("nodes"))
    return found


def fit(have: TensorSpec, want: TensorSpec) -> str | None:
    """Why a tensor of spec ``have`` cannot feed an input of spec ``want``; None when it can."""
    if have.dtype != want.dtype:
        return f"is {have.dtype}, the input takes {want.dtype}"
    if have.rank != want.rank:
        return f"has shape {_shape(have)}, the input takes {_shape(want)}"
    for a, b in zip(have.shape[1:], want.shape[1:], strict=True):
        if a is not None and b is not None and a != b:
            return f"has shape {_shape(have)}, the input takes {_shape(want)}"
    return None


def _label(node: Any, index: int) -> str:
    """A node's name in paths: its ``name``, a reference's name, a step's model, else its position."""
    if isinstance(node, str):
        return node
    if isinstance(node, dict):
        if isinstance(node.get("name"), str):
            return str(node["name"])
        if isinstance(node.get("model"), str):
            return str(node["model"]) + (f"@{node['version']}" if isinstance(node.get("version"), str) else "")
    return str(index)


def _shape(t: TensorSpec) -> str:
    return "[" + ", ".join("N" if d is None else str(d) for d in t.shape) + "]"


def _listing(specs: Mapping[str, TensorSpec]) -> str:
    return ", ".join(f"{n} {s.dtype} {_shape(s)}" for n, s in specs.items()) or "nothing"
