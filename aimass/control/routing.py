"""The routing rules, pure: commands build the routing, the routing resolves requests.

:class:`Routing` is what the job's control step keeps (in keyed state, as JSON): every model's
deployed versions, aliases, split and shadow. :meth:`Routing.apply` turns one command into a
**route update** (the JSON the Java ``Route`` operator reads, docs/CONTROL.md) or a
:class:`Refusal` (the routing unchanged). :class:`RouteTable` is the other half, what ``Route``
does with the updates: keep each model's last :data:`HISTORY` and resolve a request by the one
in effect at its timestamp. The Java side implements :class:`RouteTable` once more
(``java/.../RoutingTable.java``); both are held to ``tests/vectors/routes.tsv``.
"""

from __future__ import annotations

import copy
import json
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aimass.contract.messages import Reason
from aimass.contract.rules import Refusal
from aimass.control.commands import (
    Command,
    Deploy,
    Marker,
    Promote,
    Retire,
    Rollback,
    SetAlias,
    SetShadow,
    SetSplit,
)

#: Split and shadow buckets: a weight of 1 is this many.
BUCKETS = 10_000
#: Updates ``Route`` keeps per model (an older request is routed by the oldest of them).
HISTORY = 64
#: How far from 1 the weights of a split may sum.
WEIGHT_TOLERANCE = 1e-6
#: URI schemes a deploy may name.
URI_SCHEMES = ("file://", "kafka:", "graph:")
STABLE = "stable"
_NO_PROMOTE = "__none__"


def split_bucket(request_id: str) -> int:
    """The request's split bucket: ``crc32("split:" + id) mod 10000``."""
    return zlib.crc32(b"split:" + request_id.encode("utf-8")) % BUCKETS


def shadow_bucket(request_id: str) -> int:
    """The request's shadow bucket: ``crc32("shadow:" + id) mod 10000``."""
    return zlib.crc32(b"shadow:" + request_id.encode("utf-8")) % BUCKETS


def buckets_of(weights: Sequence[float]) -> list[int]:
    """Weights summing to 1 as bucket counts summing to :data:`BUCKETS` (largest remainder)."""
    raw = [w * BUCKETS for w in weights]
    counts = [math.floor(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in order[: BUCKETS - sum(counts)]:
        counts[i] += 1
    return counts


def _name_problem(what: str, value: str) -> str | None:
    from aimass.contract.limits import NAME_PATTERN

    if NAME_PATTERN.fullmatch(value):
        return None
    return f"{what} {value!r} is not valid: use 1-64 of A-Z a-z 0-9 _ . - , not starting with a dot"


def _metadata_problem(deploy: Deploy) -> tuple[str | None, dict[str, Any]]:
    """What is wrong with a deploy's ``model.json`` (None when valid), and the parsed metadata."""
    from pathlib import Path

    from aimass.serving.models import ModelSpec

    try:
        raw = json.loads(deploy.metadata_json)
    except ValueError as exc:
        return f"metadata_json is not JSON: {exc}", {}
    try:
        ModelSpec._from_json(raw, Path("/", deploy.model, deploy.version), ())
    except (ValueError, TypeError) as exc:
        return f"metadata_json is not a valid model.json: {exc}", {}
    return None, raw


def newest_serving(versions: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The newest version (by :func:`aimass.serving.models.version_key`) not marked ``serving: false``."""
    from aimass.serving.models import version_key

    serving = [v for v, entry in versions.items() if entry.get("serving", True)]
    return max(serving, key=version_key) if serving else None


class Routing:
    """Every model's route, built by applying commands in order (see the module docstring)."""

    def __init__(self, models: dict[str, dict[str, Any]] | None = None, seq: int = 0) -> None:
        self.models: dict[str, dict[str, Any]] = models or {}
        self.seq = seq

    # -- persistence ---------------------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps({"seq": self.seq, "models": self.models}, sort_keys=False)

    @classmethod
    def from_json(cls, text: str | None) -> Routing:
        if not text:
            return cls()
        raw = json.loads(text)
        return cls(raw["models"], raw["seq"])

    # -- reading -------------------------------------------------------------------------------

    def route(self, model: str) -> dict[str, Any] | None:
        """The model's route as a route update carries it (docs/CONTROL.md), or None."""
        state = self.models.get(model)
        if state is None:
            return None
        state = copy.deepcopy(state)  # updates are values: later commands must not change them
        versions, aliases = state["versions"], state["aliases"]
        return {
            "versions": versions,
            "default": aliases.get(STABLE) or newest_serving(versions),
            "aliases": aliases,
            "split": state["split"],
            "shadow": state["shadow"],
        }

    def update(self, model: str, effective_ms: int | None) -> dict[str, Any]:
        """The route update announcing the model's current route."""
        return {"kind": "route", "seq": self.seq, "model": model, "effective_ms": effective_ms,
                "route": self.route(model)}

    # -- writing -------------------------------------------------------------------------------

    def apply(self, command: Command) -> dict[str, Any] | Refusal:
        """Apply ``command``: its route update (or ``{"kind": "ready", ...}`` for a marker), or
        why it is refused (the routing then stays exactly as it was)."""
        a = command.action
        if isinstance(a, Marker):
            return {"kind": "ready", "token": a.token}
        problem = _name_problem("model name", a.model)
        if problem:
            return Refusal(Reason.INVALID_INPUT, problem)
        before = copy.deepcopy(self.models.get(a.model))
        first = before is None
        outcome = self._change(a, command)
        if isinstance(outcome, Refusal):
            if before is None:
                self.models.pop(a.model, None)
            else:
                self.models[a.model] = before
            return outcome
        self.seq += 1
        return self.update(a.model, None if first else command.effective_ms)

    def _change(self, a: Any, command: Command) -> Refusal | None:
        if isinstance(a, Deploy):
            return self._deploy(a)
        state = self.models.get(a.model)
        if state is None:
            return Refusal(Reason.UNKNOWN_MODEL, f"model {a.model!r} is not deployed; deployed models: "
                                                 f"{', '.join(sorted(self.models)) or 'none'}")
        versions: dict[str, Any] = state["versions"]

        def missing(version: str) -> Refusal | None:
            if version in versions:
                return None
            return Refusal(Reason.UNKNOWN_MODEL, f"model {a.model!r} has no version {version!r}; versions: "
                                                 f"{', '.join(versions) or 'none'}")

        if isinstance(a, Retire):
            refusal = missing(a.version)
            if refusal:
                return refusal
            users = [f"alias {name!r}" for name, v in state["aliases"].items() if v == a.version]
            users += [f"graph {g!r} version {v!r}" for g, v in self._graphs_using(a.model, a.version)]
            users += ["the split"] if any(v == a.version and b > 0 for v, b in state["split"]) else []
            users += ["the shadow"] if state["shadow"] and state["shadow"]["version"] == a.version else []
            if users:
                return Refusal(Reason.INVALID_INPUT, f"version {a.version!r} of {a.model!r} is still used by "
                                                     f"{', '.join(users)}: change those first")
            del versions[a.version]
            if not versions:
                del self.models[a.model]
            return None
        if isinstance(a, SetAlias):
            problem = _name_problem("alias", a.alias)
            if problem:
                return Refusal(Reason.INVALID_INPUT, problem)
            if a.alias in versions:
                return Refusal(Reason.INVALID_INPUT, f"alias {a.alias!r} of {a.model!r} is a version's name")
            if a.version is None:
                state["aliases"].pop(a.alias, None)
                return None
            refusal = missing(a.version)
            if refusal:
                return refusal
            state["aliases"][a.alias] = a.version
            return None
        if isinstance(a, SetSplit):
            return self._split(a, state, missing)
        if isinstance(a, SetShadow):
            if a.version is None:
                state["shadow"] = None
                return None
            refusal = missing(a.version)
            if refusal:
                return refusal
            if not (0.0 < a.fraction <= 1.0) or math.isnan(a.fraction):
                return Refusal(Reason.INVALID_INPUT, f"shadow fraction {a.fraction!r} must be in (0, 1]")
            state["shadow"] = {"version": a.version, "buckets": max(1, round(a.fraction * BUCKETS))}
            return None
        if isinstance(a, Promote):
            refusal = missing(a.version)
            if refusal:
                return refusal
            state["before_promote"] = state["aliases"].get(STABLE, _NO_PROMOTE)
            state["aliases"][STABLE] = a.version
            state["split"] = []
            if state["shadow"] and state["shadow"]["version"] == a.version:
                state["shadow"] = None
            return None
        if isinstance(a, Rollback):
            before = state.get("before_promote")
            if before is None and not state["split"] and not state["shadow"]:
                return Refusal(Reason.INVALID_INPUT, f"model {a.model!r}: nothing to roll back (no promote, split "
                                                     "or shadow since the last rollback)")
            state["split"], state["shadow"] = [], None
            if before is not None:
                if before == _NO_PROMOTE or before not in versions:
                    state["aliases"].pop(STABLE, None)
                else:
                    state["aliases"][STABLE] = before
                state["before_promote"] = None
            return None
        return Refusal(Reason.INVALID_INPUT, f"unknown action {type(a).__name__}")  # pragma: no cover

    def _graphs_using(self, model: str, version: str) -> list[tuple[str, str]]:
        """The graph versions whose pinned steps run ``model`` ``version``."""
        from aimass.graphs.spec import members

        return [(name, v) for name, state in self.models.items() for v, entry in state["versions"].items()
                if "graph" in entry["metadata"] and (model, version) in members(entry["metadata"]["graph"])]

    def _member(self, model: str, version: str | None) -> Any:
        """A deployed model version for a graph's check (:data:`aimass.graphs.spec.Lookup`)."""
        from pathlib import Path

        from aimass.graphs.spec import Member
        from aimass.serving.models import ModelError, ModelSpec

        state = self.models.get(model)
        if state is None:
            raise ModelError(Reason.UNKNOWN_MODEL, f"model {model!r} is not deployed; deployed models: "
                                                   f"{', '.join(sorted(self.models)) or 'none'}")
        versions = state["versions"]
        chosen = str(state["aliases"].get(version, version) if version is not None else (
            state["aliases"].get(STABLE) or newest_serving(versions)))
        if chosen not in versions:
            raise ModelError(Reason.UNKNOWN_MODEL, f"model {model!r} has no version or alias {version!r}; versions: "
                                                   f"{', '.join(versions) or 'none'}")
        meta = versions[chosen]["metadata"]
        if "graph" in meta:
            raise ModelError(Reason.INVALID_INPUT, f"{model!r} is a graph: name its nodes in this graph instead")
        spec = ModelSpec._from_json(meta, Path("/", model, chosen), ())
        return Member(chosen, spec.inputs, spec.outputs)

    def _deploy_graph(self, a: Deploy) -> tuple[str | None, dict[str, Any]]:
        """What is wrong with a graph's deploy (None when it is fine), and its version's model.json."""
        import hashlib

        from aimass.graphs.spec import GraphError, check, load

        if hashlib.sha256(a.metadata_json.encode("utf-8")).hexdigest() != a.sha256:
            return "sha256 is not the SHA-256 of metadata_json (a graph's bytes are its definition)", {}
        try:
            raw = load(a.metadata_json)
            if (raw.get("name"), raw.get("version")) != (a.model, a.version):
                return (f"the graph file says {raw.get('name')!r} version {raw.get('version')!r}, the deploy "
                        f"{a.model!r} {a.version!r}"), {}
            return None, check(raw, self._member).metadata()
        except GraphError as exc:
            return f"graph {a.model!r} version {a.version!r}: {exc}", {}

    def _deploy(self, a: Deploy) -> Refusal | None:
        from aimass.graphs.spec import GRAPH_URI

        problem = _name_problem("version", a.version)
        if problem:
            return Refusal(Reason.INVALID_INPUT, problem)
        if a.uri == GRAPH_URI:
            problem, meta = self._deploy_graph(a)
            if problem:
                return Refusal(Reason.INVALID_INPUT, problem)
            return self._add_version(a, meta)
        if not a.uri.startswith(URI_SCHEMES):
            return Refusal(Reason.INVALID_INPUT, f"uri {a.uri!r} is not one of {', '.join(URI_SCHEMES)}...")
        if len(a.sha256) != 64 or any(c not in "0123456789abcdef" for c in a.sha256):
            return Refusal(Reason.INVALID_INPUT, f"sha256 {a.sha256!r} is not 64 lower-case hex digits")
        if a.size_bytes < 0:
            return Refusal(Reason.INVALID_INPUT, f"size_bytes {a.size_bytes} is negative")
        problem, meta = _metadata_problem(a)
        if problem:
            return Refusal(Reason.INVALID_INPUT, problem)
        return self._add_version(a, meta)

    def _add_version(self, a: Deploy, meta: dict[str, Any]) -> Refusal | None:
        state = self.models.setdefault(a.model, {
            "versions": {}, "aliases": {}, "split": [], "shadow": None, "before_promote": None})
        if a.version in state["aliases"]:
            return Refusal(Reason.INVALID_INPUT, f"version {a.version!r} of {a.model!r} is an alias's name")
        known = state["versions"].get(a.version)
        if known is not None:
            if known["sha256"] == a.sha256:
                return None  # the same bytes again: nothing changes (a sync after a restart)
            return Refusal(Reason.INVALID_INPUT, f"version {a.version!r} of {a.model!r} is deployed with other bytes "
                                                 f"(sha256 {known['sha256'][:12]}...): deploy a new version")
        state["versions"][a.version] = {
            "max_batch_size": meta.get("max_batch_size"), "max_delay_ms": meta.get("max_delay_ms"),
            "serving": meta.get("serving", True) is not False,
            "uri": a.uri, "sha256": a.sha256, "size_bytes": a.size_bytes, "metadata": meta,
        }
        return None

    @staticmethod
    def _split(a: SetSplit, state: dict[str, Any], missing: Any) -> Refusal | None:
        if not a.weights:
            state["split"] = []
            return None
        names = [v for v, _ in a.weights]
        if len(set(names)) != len(names):
            return Refusal(Reason.INVALID_INPUT, f"split of {a.model!r} names a version twice: {names}")
        for version, weight in a.weights:
            refusal = missing(version)
            if refusal:
                return refusal  # type: ignore[no-any-return]
            if not (0.0 <= weight <= 1.0):
                return Refusal(Reason.INVALID_INPUT, f"weight {weight!r} of version {version!r} is not in [0, 1]")
        total = math.fsum(w for _, w in a.weights)
        if abs(total - 1.0) > WEIGHT_TOLERANCE:
            return Refusal(Reason.INVALID_INPUT, f"split weights of {a.model!r} sum to {total:g}, not 1")
        state["split"] = [[v, b] for v, b in zip(names, buckets_of([w for _, w in a.weights]), strict=True)]
        return None


# -- resolution: what the Java Route operator does with the updates ----------------------------

RULES = ("NONE", "DEFAULT", "PINNED", "ALIAS", "SPLIT", "UNKNOWN", "CONTROL")


@dataclass(frozen=True, slots=True)
class Resolution:
    """Which version serves a request, and by which rule (``RULES``)."""

    rule: str
    version: str = ""
    alias: str = ""
    bucket: int = -1
    shadow: str = ""
    detail: str = ""


def _listing(names: Sequence[str], most: int = 20) -> str:
    if not names:
        return "none"
    shown = ", ".join(names[:most])
    return shown + (", ..." if len(names) > most else "")


class RouteTable:
    """Route updates per model (the last :data:`HISTORY`), resolving requests by timestamp."""

    def __init__(self) -> None:
        self.updates: dict[str, list[dict[str, Any]]] = {}

    def apply(self, update: Mapping[str, Any]) -> None:
        kept = self.updates.setdefault(update["model"], [])
        kept.append(dict(update))
        del kept[:-HISTORY]

    def current(self, model: str, timestamp_ms: int) -> dict[str, Any] | None:
        """The update in effect for a request stamped ``timestamp_ms``; None for an unknown model."""
        kept = self.updates.get(model)
        if not kept:
            return None
        for update in reversed(kept):
            if update["effective_ms"] is None or update["effective_ms"] <= timestamp_ms:
                return update
        return kept[0]

    def resolve(self, model: str, requested: str | None, request_id: str, timestamp_ms: int) -> Resolution:
        update = self.current(model, timestamp_ms)
        if update is None:
            deployed = sorted(m for m, kept in self.updates.items() if kept[-1]["route"] is not None)
            return Resolution("UNKNOWN", detail=f"model {model!r} is not deployed; deployed models: "
                                                f"{_listing(deployed)}")
        route = update["route"]
        if route is None:
            return Resolution("UNKNOWN", detail=f"model {model!r} has no deployed version")
        versions, aliases = route["versions"], route["aliases"]
        if requested is not None:
            if requested in versions:
                chosen = Resolution("PINNED", requested)
            elif requested in aliases:
                chosen = Resolution("ALIAS", aliases[requested], alias=requested)
            else:
                return Resolution("UNKNOWN", detail=(
                    f"model {model!r} has no version or alias {requested!r}; versions: {_listing(list(versions))}; "
                    f"aliases: {_listing(sorted(aliases))}"))
        elif route["split"]:
            bucket = split_bucket(request_id)
            cumulative = 0
            chosen = Resolution("UNKNOWN", detail=f"model {model!r} has no serving version")
            for version, count in route["split"]:
                cumulative += count
                if bucket < cumulative:
                    chosen = Resolution("SPLIT", version, bucket=bucket)
                    break
        elif route["default"] is not None:
            chosen = Resolution("DEFAULT", route["default"])
        else:
            return Resolution("UNKNOWN", detail=f"model {model!r} has no serving version")
        shadow = route["shadow"]
        if (chosen.rule != "UNKNOWN" and shadow is not None and shadow["version"] != chosen.version
                and shadow_bucket(request_id) < shadow["buckets"]):
            return Resolution(chosen.rule, chosen.version, chosen.alias, chosen.bucket, shadow["version"])
        return chosen
