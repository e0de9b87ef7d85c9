"""Graph files checked against the models they name: what is refused, naming the step, and what
a valid graph's inputs, outputs and pinned versions are."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aimass.contract.messages import Reason
from aimass.graphs.spec import GraphError, Member, check, load
from aimass.serving.models import ModelError, TensorSpec

PIXELS = TensorSpec("pixels", "float32", (None, 64))
PROBS = TensorSpec("probabilities", "float32", (None, 10))
DIGITS = Member("2", (PIXELS,), (TensorSpec("label", "int64", (None,)), PROBS))
MODELS = {
    ("digits", "1"): Member("1", DIGITS.inputs, DIGITS.outputs),
    ("digits", "2"): DIGITS,
    ("scale", "1"): Member("1", (PIXELS,), (TensorSpec("scaled", "float32", (None, 64)),)),
    ("wide", "1"): Member("1", (PIXELS,), (TensorSpec("label", "int64", (None,)),
                                           TensorSpec("probabilities", "float32", (None, 12)))),
    ("text", "1"): Member("1", (TensorSpec("ids", "int64", (None, 16)),), (PROBS,)),
    ("merge", "1"): Member("1", (TensorSpec("a", "float32", (None, 10)), TensorSpec("b", "float32", (None, 10))),
                           (TensorSpec("probabilities", "float32", (None, 10)),)),
}
DEFAULTS = {"digits": "2", "scale": "1", "wide": "1", "text": "1", "merge": "1"}


def lookup(model: str, version: str | None) -> Member:
    chosen = DEFAULTS.get(model) if version is None else version
    found = MODELS.get((model, chosen or ""))
    if found is None:
        raise ModelError(Reason.UNKNOWN_MODEL, f"model {model!r} version {version!r} is not in the repository")
    return found


def graph(root: Any, **nodes: Any) -> dict[str, Any]:
    return {"name": "g", "version": "1", "root": root, "nodes": nodes}


def refused(raw: dict[str, Any]) -> str:
    with pytest.raises(GraphError) as caught:
        check(raw, lookup)
    return str(caught.value)


def test_an_ensemble_of_two_versions_pins_them_and_takes_the_members_inputs() -> None:
    checked = check(graph({"ensemble": [{"model": "digits", "version": "1", "outputs": ["probabilities"]},
                                        {"model": "digits", "outputs": ["probabilities"]}], "merge": "mean",
                           "k": 1, "timeout_ms": 50}), lookup)
    assert [t.name for t in checked.inputs] == ["pixels"]
    assert [(t.name, t.shape) for t in checked.outputs] == [("probabilities", (None, 10))]
    assert [m["version"] for m in checked.definition["root"]["ensemble"]] == ["1", "2"]
    meta = checked.metadata()
    assert meta["inputs"] == [{"name": "pixels", "dtype": "float32", "shape": [-1, 64]}]


def test_a_mean_merge_of_integer_labels_is_refused() -> None:
    checked_members = [{"model": "digits", "version": "1"}, {"model": "digits", "version": "2"}]
    # label is int64: a mean cannot average it, so a mean ensemble of the full digits outputs is refused
    message = refused(graph({"ensemble": checked_members, "merge": "mean"}))
    assert "'label' is int64" in message and "root" in message


def test_a_vote_answers_label_and_votes() -> None:
    checked = check(graph({"ensemble": [{"model": "digits", "version": "1"}, {"model": "digits", "version": "2"},
                                         {"name": "again", "model": "digits"}], "merge": "vote",
                           "vote_on": "probabilities", "k": 2}), lookup)
    assert [(t.name, t.dtype) for t in checked.outputs] == [("label", "int64"), ("votes", "int64")]


def test_a_sequence_maps_one_steps_output_to_the_next_input() -> None:
    checked = check(graph({"sequence": [{"model": "scale"}, {"model": "digits", "inputs": {"pixels": "scaled"}}]}),
                    lookup)
    assert [t.name for t in checked.inputs] == ["pixels"]
    assert [t.name for t in checked.outputs] == ["label", "probabilities"]


def test_a_cycle_through_node_references_is_refused_naming_it() -> None:
    message = refused(graph("a", a={"sequence": [{"model": "scale"}, "b"]}, b={"sequence": ["a"]}))
    assert "cycle a -> b -> a" in message


def test_a_step_naming_an_unknown_model_is_refused_naming_the_step() -> None:
    message = refused(graph({"sequence": [{"model": "scale"}, {"name": "classify", "model": "nope"}]}))
    assert "root/classify" in message and "'nope'" in message


def test_tensors_that_do_not_fit_between_steps_are_refused() -> None:
    message = refused(graph({"sequence": [{"model": "scale"}, {"model": "text", "inputs": {"ids": "scaled"}}]}))
    assert "root/text" in message and "float32" in message and "int64" in message


def test_a_merge_of_outputs_with_different_shapes_is_refused_naming_the_member() -> None:
    message = refused(graph({"ensemble": [{"model": "digits"}, {"model": "wide"}], "merge": "vote"}))
    assert "member 'wide'" in message and "[N, 12]" in message and "[N, 10]" in message


def test_a_merge_model_takes_member_outputs_by_member_name() -> None:
    members = [{"name": "x", "model": "digits", "version": "1"}, {"name": "y", "model": "digits"}]
    ok = graph({"ensemble": members, "merge": {"model": "merge", "inputs": {"a": "x.probabilities",
                                                                             "b": "y.probabilities"}}})
    assert [t.name for t in check(ok, lookup).outputs] == ["probabilities"]
    partial = graph({"ensemble": members, "k": 1, "merge": {"model": "merge", "inputs": {"a": "x.probabilities",
                                                                                         "b": "y.probabilities"}}})
    assert "needs every member" in refused(partial)


def test_a_switch_needs_branches_with_the_same_outputs() -> None:
    cheap_first = {"first": {"model": "digits", "version": "1"}, "output": "probabilities", "max_at_least": 0.9,
                   "then": None, "else": {"model": "digits", "version": "2"}}
    assert [t.name for t in check(graph({"switch": cheap_first}), lookup).outputs] == ["label", "probabilities"]
    message = refused(graph({"switch": {**cheap_first, "else": {"model": "scale"}}}))
    assert "both branches" in message


@pytest.mark.parametrize(("raw", "words"), [
    ({"name": "g", "version": "1"}, "'root' is missing"),
    ({"name": "bad/name", "version": "1", "root": {"model": "digits"}}, "name 'bad/name'"),
    (graph({"ensemble": [{"model": "digits"}]}), "two or more"),
    (graph({"ensemble": [{"model": "digits"}, {"model": "digits"}]}), "distinct names"),
    (graph({"model": "digits", "sequence": []}), "exactly one of"),
    (graph("missing"), "names node 'missing'"),
])
def test_malformed_graphs_say_what_is_wrong(raw: dict[str, Any], words: str) -> None:
    assert words in refused(raw)


def test_load_refuses_what_is_not_a_json_object() -> None:
    with pytest.raises(GraphError, match="not JSON"):
        load("{")
    with pytest.raises(GraphError, match="JSON object"):
        load("[]")


def test_the_cli_validates_the_example_graphs_against_the_demo_models(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parents[3] / "examples" / "graphs"
    models = Path(__file__).resolve().parents[3] / "models"
    if not (models / "digits" / "2").is_dir():
        pytest.fail("the demo models are missing: run `make setup` (or `aimass models`)")
    for path in sorted(examples.glob("*.json")):
        done = subprocess.run([sys.executable, "-m", "aimass.cli", "graph", "validate", str(path),
                               "--models-dir", str(models)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (path, done.stderr)
        assert "is valid" in done.stdout
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(graph({"sequence": [{"name": "first", "model": "nope"}]})))
    done = subprocess.run([sys.executable, "-m", "aimass.cli", "graph", "validate", str(bad), "--models-dir",
                           str(models)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "root/first" in done.stderr, done.stderr


def test_a_graph_result_prints_its_steps_and_what_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    from aimass.client.cli import _print_result
    from aimass.contract.messages import GraphOutcome, InferenceResult, Status, StepTiming

    steps = (StepTiming("vote/v1", "digits", "1", "OK", 8, 0.25, 1.5),)
    _print_result(InferenceResult("r-1", "digits-vote", Status.OK, 1, "1",
                                  graph=GraphOutcome(True, ("vote/v2",), steps)))
    out = capsys.readouterr().out
    assert "PARTIAL, missing vote/v2" in out and "vote/v1: digits 1 OK" in out
