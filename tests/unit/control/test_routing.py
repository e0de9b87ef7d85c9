"""The routing rules: commands build routes or are refused whole; requests resolve by them."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aimass.contract.messages import Reason
from aimass.control.commands import Command, Deploy, Marker, Promote, Retire, Rollback, SetAlias, SetShadow, SetSplit
from aimass.control.routing import BUCKETS, Refusal, RouteTable, Routing, buckets_of, shadow_bucket, split_bucket

META = {"inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 2]}],
        "outputs": [{"name": "y", "dtype": "int64", "shape": [-1]}]}


def deploy(model: str, version: str, sha: str = "ab" * 32, **meta: object) -> Command:
    return Command(Deploy(model, version, f"file:///m/{model}/{version}", sha, 1, json.dumps({**META, **meta})), 1000)


def cmd(action: object, at: int = 2000, effective: int | None = None) -> Command:
    return Command(action, at, effective)  # type: ignore[arg-type]


def routed(*commands: Command) -> tuple[Routing, RouteTable]:
    routing, table = Routing(), RouteTable()
    for command in commands:
        update = routing.apply(command)
        assert isinstance(update, dict), update
        if update["kind"] == "route":
            table.apply(update)
    return routing, table


def refused(routing: Routing, command: Command) -> Refusal:
    before = routing.to_json()
    outcome = routing.apply(command)
    assert isinstance(outcome, Refusal), outcome
    assert routing.to_json() == before  # a refused command changes nothing
    return outcome


def test_a_first_deploy_routes_every_request_and_later_changes_from_their_effective_time() -> None:
    _, table = routed(deploy("m", "1"), deploy("m", "2"))
    assert table.resolve("m", None, "r", 0).version == "1"  # before version 2's effective time (its issue time)
    assert table.resolve("m", None, "r", 1000).version == "2"
    assert table.resolve("m", "1", "r", 5000).rule == "PINNED"


def test_the_default_is_stable_else_the_newest_serving_version() -> None:
    routing, table = routed(deploy("m", "2"), deploy("m", "10"), deploy("m", "11", serving=False))
    assert table.resolve("m", None, "r", 5000).version == "10"
    _, table = routed(deploy("m", "2"), deploy("m", "10"), cmd(SetAlias("m", "stable", "2")))
    assert table.resolve("m", None, "r", 5000).version == "2"


def test_a_split_follows_its_weights_and_a_hash_of_the_id() -> None:
    _, table = routed(deploy("m", "1"), deploy("m", "2"), cmd(SetSplit("m", (("1", 0.9), ("2", 0.1)))))
    picks = [table.resolve("m", None, f"req-{i}", 5000) for i in range(20_000)]
    share = sum(p.version == "2" for p in picks) / len(picks)
    assert abs(share - 0.1) < 4 * math.sqrt(0.1 * 0.9 / len(picks))  # binomial bounds
    assert all(p.rule == "SPLIT" and (p.bucket < 9000) == (p.version == "1") for p in picks)
    again = table.resolve("m", None, "req-7", 5000)
    assert again == picks[7]  # a resubmission lands on the same version
    assert table.resolve("m", "2", "req-7", 5000).rule == "PINNED"  # a pinned request ignores the split


def test_aliases_and_what_an_unknown_request_is_told() -> None:
    _, table = routed(deploy("m", "1"), deploy("m", "2"), cmd(SetAlias("m", "canary", "2")))
    r = table.resolve("m", "canary", "r", 5000)
    assert (r.rule, r.version, r.alias) == ("ALIAS", "2", "canary")
    unknown = table.resolve("m", "3", "r", 5000)
    assert unknown.rule == "UNKNOWN"
    assert unknown.detail == "model 'm' has no version or alias '3'; versions: 1, 2; aliases: canary"
    assert table.resolve("z", None, "r", 5000).detail == "model 'z' is not deployed; deployed models: m"


def test_a_shadow_mirrors_its_fraction_and_never_the_version_itself() -> None:
    _, table = routed(deploy("m", "1"), deploy("m", "2"), cmd(SetAlias("m", "stable", "1")),
                      cmd(SetShadow("m", "2", 0.25)))
    picks = [table.resolve("m", None, f"id-{i}", 5000) for i in range(8000)]
    share = sum(bool(p.shadow) for p in picks) / len(picks)
    assert abs(share - 0.25) < 4 * math.sqrt(0.25 * 0.75 / len(picks))
    assert all(p.shadow == "" for p in (table.resolve("m", "2", f"id-{i}", 5000) for i in range(200)))


def test_promote_and_rollback() -> None:
    routing, table = routed(deploy("m", "1"), deploy("m", "2"), cmd(SetAlias("m", "stable", "1")),
                            cmd(SetSplit("m", (("1", 0.5), ("2", 0.5)))), cmd(SetShadow("m", "2", 1.0)),
                            cmd(Promote("m", "2"), 3000))
    route = routing.route("m")
    assert route is not None
    assert (route["default"], route["split"], route["shadow"]) == ("2", [], None)
    update = routing.apply(cmd(Rollback("m"), 4000))
    assert isinstance(update, dict)
    assert update["route"]["default"] == "1"
    assert refused(routing, cmd(Rollback("m"))).message.startswith("model 'm': nothing to roll back")


@pytest.mark.parametrize(("action", "expected"), [
    (Retire("m", "1"), "version '1' of 'm' is still used by alias 'stable'"),
    (Retire("m", "9"), "model 'm' has no version '9'; versions: 1, 2"),
    (SetSplit("m", (("1", 0.5), ("2", 0.4))), "split weights of 'm' sum to 0.9, not 1"),
    (SetSplit("m", (("1", 1.5), ("2", -0.5))), "weight 1.5 of version '1' is not in [0, 1]"),
    (SetSplit("m", (("1", 0.5), ("3", 0.5))), "model 'm' has no version '3'"),
    (SetSplit("m", (("1", 0.5), ("1", 0.5))), "split of 'm' names a version twice"),
    (SetShadow("m", "2", 0.0), "shadow fraction 0.0 must be in (0, 1]"),
    (SetShadow("m", "2", float("nan")), "shadow fraction nan must be in (0, 1]"),
    (SetAlias("m", "2", "1"), "alias '2' of 'm' is a version's name"),
    (SetAlias("m", "../x", "1"), "alias '../x' is not valid"),
    (Promote("z", "1"), "model 'z' is not deployed"),
    (Deploy("m", "2", "file:///m/m/2", "cd" * 32, 1, json.dumps(META)), "is deployed with other bytes"),
    (Deploy("m", "3", "http://x", "cd" * 32, 1, json.dumps(META)), "uri 'http://x' is not one of"),
    (Deploy("m", "3", "file:///m/m/3", "XYZ", 1, json.dumps(META)), "sha256 'XYZ' is not 64 lower-case hex"),
    (Deploy("m", "3", "file:///m/m/3", "cd" * 32, 1, "{"), "metadata_json is not JSON"),
    (Deploy("m", "3", "file:///m/m/3", "cd" * 32, 1, json.dumps({"inputs": []})), "is not a valid model.json"),
    (Deploy("m", "stable", "file:///m/m/stable", "cd" * 32, 1, json.dumps(META)), "is an alias's name"),
    (Deploy(".m", "3", "file:///x", "cd" * 32, 1, json.dumps(META)), "model name '.m' is not valid"),
])
def test_bad_commands_are_refused_with_a_message_and_change_nothing(action: object, expected: str) -> None:
    routing, _ = routed(deploy("m", "1"), deploy("m", "2"), cmd(SetAlias("m", "stable", "1")))
    assert expected in refused(routing, cmd(action)).message


def test_reasons_of_refusals() -> None:
    routing, _ = routed(deploy("m", "1"))
    assert refused(routing, cmd(Retire("m", "9"))).reason is Reason.UNKNOWN_MODEL
    assert refused(routing, cmd(SetShadow("m", "1", 2.0))).reason is Reason.INVALID_INPUT


def test_the_same_deploy_again_changes_nothing_and_retiring_the_last_version_unroutes_the_model() -> None:
    routing, table = routed(deploy("m", "1"), deploy("m", "1"))
    assert list(routing.models["m"]["versions"]) == ["1"]
    update = routing.apply(cmd(Retire("m", "1")))
    assert isinstance(update, dict) and update["route"] is None
    table.apply(update)
    assert table.resolve("m", None, "r", 5000).detail == "model 'm' has no deployed version"


def test_updates_are_values_and_the_state_round_trips() -> None:
    routing, table = routed(deploy("m", "1"), cmd(SetAlias("m", "stable", "1")))
    first = table.updates["m"][-1]
    routing.apply(cmd(SetAlias("m", "canary", "1")))
    assert first["route"]["aliases"] == {"stable": "1"}  # a later command did not change an earlier update
    again = Routing.from_json(routing.to_json())
    assert again.to_json() == routing.to_json() and again.seq == routing.seq == 3


def test_a_marker_is_a_ready_update_and_changes_nothing() -> None:
    routing = Routing()
    assert routing.apply(cmd(Marker("job/1"))) == {"kind": "ready", "token": "job/1"}
    assert routing.seq == 0


def test_history_is_bounded_and_an_older_request_uses_the_oldest_kept() -> None:
    commands = [deploy("m", "1")] + [cmd(SetAlias("m", "stable", "1"), at=10_000 + i) for i in range(100)]
    _, table = routed(*commands)
    assert len(table.updates["m"]) == 64
    assert table.current("m", 0) is table.updates["m"][0]


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=6))
def test_buckets_of_weights_sum_to_the_whole(raw: list[float]) -> None:
    total = sum(raw)
    if total == 0:
        return
    weights = [w / total for w in raw]
    counts = buckets_of(weights)
    assert sum(counts) == BUCKETS
    assert all(abs(c - w * BUCKETS) <= 1 for c, w in zip(counts, weights, strict=True))


def test_buckets_are_in_range_and_independent() -> None:
    ids = [f"req-{i}" for i in range(5000)]
    assert all(0 <= split_bucket(i) < BUCKETS and 0 <= shadow_bucket(i) < BUCKETS for i in ids)
    both = sum(split_bucket(i) < 5000 and shadow_bucket(i) < 5000 for i in ids) / len(ids)
    assert abs(both - 0.25) < 0.03
