"""Control commands on the wire, and the job's control step: updates, or dead letters and no change."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aimass.contract.codec import Codec, DecodeError
from aimass.contract.messages import Reason
from aimass.control.commands import (
    Command,
    ControlCodec,
    Deploy,
    Marker,
    Promote,
    Retire,
    Rollback,
    SetAlias,
    SetShadow,
    SetSplit,
)
from aimass.control.step import ControlStep

CODEC = ControlCodec()
STEP = ControlStep(CODEC, Codec())
META = json.dumps({"inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 2]}],
                   "outputs": [{"name": "y", "dtype": "int64", "shape": [-1]}]})
ACTIONS = [
    Deploy("m", "1", "kafka:aimass.model-blobs/0/5-9", "ab" * 32, 123, META),
    Retire("m", "1"), SetAlias("m", "canary", "2"), SetAlias("m", "canary", None),
    SetSplit("m", (("1", 0.9), ("2", 0.1))), SetSplit("m", ()), SetShadow("m", "2", 0.1), SetShadow("m", None),
    Promote("m", "2"), Rollback("m"), Marker("job/x"),
]


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: type(a).__name__)
def test_every_command_round_trips(action: object) -> None:
    command = Command(action, 1_700_000_000_000, 1_700_000_001_000)  # type: ignore[arg-type]
    assert CODEC.decode(CODEC.encode(command)) == command


def test_keys_name_what_a_command_configures() -> None:
    keys = [Command(a, 0).key for a in ACTIONS]  # type: ignore[arg-type]
    assert keys == ["m/versions/1", "m/versions/1", "m/aliases/canary", "m/aliases/canary", "m/split", "m/split",
                    "m/shadow", "m/shadow", "m/promote", "m/promote", "_marker/job"]
    assert Command(Marker("restore/job/7f"), 0).key == "_marker/restore/job"


@given(st.binary(max_size=80))
def test_garbage_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        CODEC.decode(CODEC.header + data if data[:1] == b"\x00" else data)


def handle(command: Command | bytes, state: str | None) -> tuple[str | None, dict | None, object]:
    raw = command if isinstance(command, bytes) else CODEC.encode(command)
    out = STEP.handle(raw, "aimass.control", 0, 7, state)
    letter = None if out.dead_letter is None else Codec().decode_dead_letter(out.dead_letter)
    return out.state, None if out.update is None else json.loads(out.update), letter


def test_an_accepted_command_updates_the_state_and_emits_its_route() -> None:
    state, update, letter = handle(Command(ACTIONS[0], 1000), None)
    assert letter is None and state is not None
    assert update == {"kind": "route", "seq": 1, "model": "m", "effective_ms": None, "route": update["route"]}
    assert update["route"]["default"] == "1"
    _, update, _ = handle(Command(SetAlias("m", "canary", "1"), 1000, 2500), state)
    assert update is not None and update["effective_ms"] == 2500 and update["route"]["aliases"] == {"canary": "1"}


def test_a_refused_or_undecodable_record_is_a_dead_letter_and_changes_nothing() -> None:
    state, _, _ = handle(Command(ACTIONS[0], 1000), None)
    command = Command(SetSplit("m", (("1", 0.5), ("2", 0.5))), 1000)
    new_state, update, letter = handle(command, state)
    assert new_state is None and update is None
    assert letter.reason is Reason.UNKNOWN_MODEL and letter.request_id == command.command_id  # type: ignore[attr-defined]
    assert letter.message.startswith("split m 1=0.5 2=0.5: refused: model 'm' has no version '2'")  # type: ignore[attr-defined]
    assert (letter.topic, letter.partition, letter.offset) == ("aimass.control", 0, 7)  # type: ignore[attr-defined]
    for garbage in (b"", b"\xc3\x01" + bytes(8), CODEC.encode(command)[:-3]):
        new_state, update, letter = handle(garbage, state)
        assert new_state is None and update is None
        assert letter.reason in (Reason.UNDECODABLE, Reason.WRONG_SCHEMA)  # type: ignore[attr-defined]


def test_a_marker_is_passed_on_without_touching_the_state() -> None:
    state, update, letter = handle(Command(Marker("job/1"), 1), None)
    assert (state, update, letter) == (None, {"kind": "ready", "token": "job/1"}, None)
