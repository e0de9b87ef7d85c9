"""Graphs deployed through the routing: checked against the deployed versions, pinned, refused
naming the step, and protecting the versions they pin from a retire."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aimass.contract.messages import Reason
from aimass.control.commands import Command, Deploy, Retire
from aimass.control.routing import Refusal, Routing
from aimass.control.store import ModelStore
from aimass.graphs.cli import graph_deploy
from aimass.serving.sessions import SessionCache
from aimass.settings import EngineSettings

DIGITS = {"inputs": [{"name": "pixels", "dtype": "float32", "shape": [-1, 64]}],
          "outputs": [{"name": "label", "dtype": "int64", "shape": [-1]},
                      {"name": "probabilities", "dtype": "float32", "shape": [-1, 10]}]}


def routing_with_digits() -> Routing:
    routing = Routing()
    for version in ("1", "2"):
        meta = json.dumps({**DIGITS, "name": "digits", "version": version})
        assert not isinstance(routing.apply(Command(Deploy("digits", version, f"file:///m/digits/{version}",
                                                           "ab" * 32, 1, meta), 1000)), Refusal)
    return routing


def graph_text(**root: Any) -> str:
    return json.dumps({"name": "vote", "version": "1", "root": root or {
        "ensemble": [{"name": "a", "model": "digits", "version": "1"}, {"name": "b", "model": "digits"}],
        "merge": "vote", "vote_on": "probabilities"}})


def test_a_graph_deploy_pins_its_steps_and_announces_a_version_whose_metadata_is_the_check() -> None:
    routing = routing_with_digits()
    update = routing.apply(Command(graph_deploy(graph_text()), 2000))
    assert not isinstance(update, Refusal), update
    entry = update["route"]["versions"]["1"]
    assert entry["uri"] == "graph:"
    members = entry["metadata"]["graph"]["root"]["ensemble"]
    assert [m["version"] for m in members] == ["1", "2"]  # the default (newest) pinned
    assert entry["metadata"]["outputs"][0]["name"] == "label"


def test_a_retire_of_a_version_a_graph_pins_is_refused() -> None:
    routing = routing_with_digits()
    routing.apply(Command(graph_deploy(graph_text()), 2000))
    refusal = routing.apply(Command(Retire("digits", "2"), 3000))
    assert isinstance(refusal, Refusal) and "graph 'vote' version '1'" in refusal.message


def test_a_graph_naming_an_unknown_model_is_refused_naming_the_step() -> None:
    routing = routing_with_digits()
    text = graph_text(sequence=[{"name": "first", "model": "digits"}, {"name": "then", "model": "missing"}])
    refusal = routing.apply(Command(graph_deploy(text), 2000))
    assert isinstance(refusal, Refusal) and refusal.reason is Reason.INVALID_INPUT
    assert "root/then" in refusal.message and "'missing' is not deployed" in refusal.message
    assert "vote" not in routing.models  # nothing changed


def test_a_graph_deploy_whose_sha256_is_not_its_definitions_is_refused() -> None:
    routing = routing_with_digits()
    good = graph_deploy(graph_text())
    bad = Deploy(good.model, good.version, good.uri, "cd" * 32, good.size_bytes, good.metadata_json)
    refusal = routing.apply(Command(bad, 2000))
    assert isinstance(refusal, Refusal) and "SHA-256 of metadata_json" in refusal.message


def test_the_store_registers_a_graph_version_as_a_spec_with_its_definition(tmp_path: Path) -> None:
    routing = routing_with_digits()
    update = routing.apply(Command(graph_deploy(graph_text()), 2000))
    assert not isinstance(update, Refusal)
    store = ModelStore(tmp_path, SessionCache(EngineSettings(use_gpu=False)))
    try:
        store.apply(update)
        spec = store.resolve("vote", "1")
        assert spec.graph is not None and spec.output_names == ("label", "votes")
        assert spec.input_names == ("pixels",)
    finally:
        store.close()
